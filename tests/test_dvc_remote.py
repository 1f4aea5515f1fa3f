"""Shared storage: a DVC remote (a local folder stands in for S3, GCS, SSH, ...) holds every iteration's data and
models; a fresh clone pulls them back byte for byte with `dvc status` clean, and `dvc gc` keeps what the commits
still name. The same commands as the README's "Shared storage"."""

import hashlib
import os
import subprocess
import sys

import pytest

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}

MAKE = """import hashlib, json, pathlib, sys, yaml
p = yaml.safe_load(open("params.yaml"))
key, seed = sys.argv[1], p["seed"]
model = pathlib.Path("models") / key
model.mkdir(parents=True, exist_ok=True)
(model / "model.safetensors").write_bytes(hashlib.sha256(f"{key}{seed}".encode()).digest() * 4096)
(model / "config.json").write_text(json.dumps({"key": key, "seed": seed}))
data = pathlib.Path("data") / key
data.mkdir(parents=True, exist_ok=True)
(data / "response_pairs.jsonl").write_text(json.dumps({"pair_id": f"rp-{key}-{seed}"}) + "\\n")
"""

DVC_YAML = """stages:
  train:
    foreach: [M1, M2]
    do:
      cmd: python make.py ${item}
      deps: [make.py]
      params: [seed]
      outs:
        - models/${item}
        - data/${item}
"""


def run(cwd, *cmd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=GIT_ENV)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def dvc(cwd, *args):
    return run(cwd, sys.executable, "-m", "dvc", *args)


def digests(root):
    out = {}
    for top in ("models", "data"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and path.name != ".gitignore":
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture()
def pushed(tmp_path):
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    dvc(repo, "init", "-q")
    (repo / "make.py").write_text(MAKE)
    (repo / "params.yaml").write_text("seed: 0\n")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    dvc(repo, "remote", "add", "-d", "storage", str(remote))
    dvc(repo, "repro", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "seed 0")
    dvc(repo, "push", "-q")
    return repo, remote


def test_a_fresh_clone_pulls_every_model_and_data_file_back(pushed, tmp_path):
    repo, remote = pushed
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert digests(clone) == {}  # git holds only the pointers (dvc.lock) and .gitignore files
    dvc(clone, "pull", "-q")
    assert digests(clone) == digests(repo) and len(digests(clone)) == 6
    assert "Data and pipelines are up to date" in dvc(clone, "status")
    assert "Cache and remote 'storage' are in sync" in dvc(clone, "status", "--cloud")


def test_gc_keeps_what_the_commits_name_and_the_remote_keeps_the_rest(pushed, tmp_path):
    repo, _ = pushed
    old = digests(repo)
    (repo / "params.yaml").write_text("seed: 1\n")
    dvc(repo, "repro", "-q")
    run(repo, "git", "commit", "-qam", "seed 1")
    dvc(repo, "push", "-q")
    assert digests(repo) != old
    dvc(repo, "gc", "--all-commits", "-f", "-q")  # both commits' models stay in the cache
    run(repo, "git", "checkout", "-q", "HEAD~1")
    dvc(repo, "checkout", "-q")
    assert digests(repo) == old
    run(repo, "git", "checkout", "-q", "-")
    dvc(repo, "checkout", "-q")
    dvc(repo, "gc", "--workspace", "-f", "-q")  # only what the workspace uses: the old model leaves the cache
    run(repo, "git", "checkout", "-q", "HEAD~1")
    out = subprocess.run([sys.executable, "-m", "dvc", "checkout"], cwd=repo, capture_output=True, text=True)
    assert out.returncode != 0  # not in the local cache any more ...
    dvc(repo, "pull", "-q")  # ... but the remote still has it
    assert digests(repo) == old
