#!/bin/bash
# On the device machine: run every line "<tag> <probe args...>" of a grid file in parallel, then pack results.
grid=$1; limit=${2:-480}
mkdir -p bench/irpo_probe/logs
while read -r tag rest; do
  [ -z "$tag" ] && continue; case $tag in \#*) continue;; esac
  timeout $limit python3 bench/irpo_probe/probe.py --tag $tag --batch-size ${BS:-512} $rest > bench/irpo_probe/logs/$tag.log 2>&1 &
done < $grid
wait
for f in bench/irpo_probe/logs/*.log; do echo "== $f"; tr '\r' '\n' < $f | grep -E "^\[|Error|error" | cut -c1-400 | tail -12; done
tar czf $OUT/res.tgz bench/irpo_probe/results-*.json bench/irpo_probe/logs
