"""Which code and template files each DVC stage runs, versus the `deps` dvc.yaml declares.

    python scripts/stage_deps.py            # per stage: what it should declare, what is missing / extra
    python scripts/stage_deps.py --check    # the same, exit 1 on any mismatch (CI, pre-commit)
    python scripts/stage_deps.py --write    # rewrite dvc.yaml's code and template deps to match

How the deps are found (statically: nothing is imported or run) is in pipeline/stage_deps.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.stage_deps import rewrite_deps, stage_deps  # after the sys.path line above


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if any stage's deps differ from dvc.yaml")
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this script's repo)")
    ap.add_argument("--dvc-file", default="dvc.yaml", help="stages file under --root (default dvc.yaml)")
    ap.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code and template deps to match")
    args = ap.parse_args(argv)
    if args.write:
        rewrite_deps(args.root, args.dvc_file)
    reports = stage_deps(args.root, args.dvc_file)
    for r in reports:
        status = "ok" if r.ok else f"{len(r.missing)} missing, {len(r.extra)} extra"
        print(f"{r.name}: {status}")
        print("  should declare:\n" + "\n".join(f"    - {f}" for f in sorted(r.required)))
        if not r.ok:
            print("\n".join(r.message().splitlines()[1:]))  # as is: the lines paste into dvc.yaml
        print()
    bad = [r.name for r in reports if not r.ok]
    differ = f"; differ: {', '.join(bad)}" if bad else ""
    print(f"{len(reports) - len(bad)} of {len(reports)} stages match dvc.yaml{differ}")
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
