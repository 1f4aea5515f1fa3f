"""Switch the project to a method's preset: params/<name>.yaml becomes params.yaml (validated first).

    python scripts/use_preset.py --list            # the presets and the paper each follows
    python scripts/use_preset.py meta_rewarding    # params.yaml <- params/meta_rewarding.yaml
    dvc repro                                      # or: dvc exp run -S self_instruct.num_prompts=3 ...

A preset holds the paper's values, each with the section it comes from (values the paper does not state are
marked "ours"); keys it leaves out take the defaults documented in pipeline/config.py. The current params.yaml
is kept as params.yaml.bak. `git diff params.yaml` shows what changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PRESETS = REPO / "params"


def presets() -> dict[str, str]:
    """name -> the preset's first comment line (which paper it follows)."""
    return {p.stem: p.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") for p in sorted(PRESETS.glob("*.yaml"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="preset name (a file params/<name>.yaml)")
    parser.add_argument("--list", action="store_true", help="list the presets")
    parser.add_argument("--to", default="params.yaml", help="where to write (default: params.yaml)")
    args = parser.parse_args(argv)
    known = presets()
    if args.list or not args.name:
        print("\n".join(f"{name:16} {about}" for name, about in known.items()))
        return 0
    if args.name not in known:
        print(f"error: no preset {args.name!r} — known: {', '.join(known)}", file=sys.stderr)
        return 2
    from pipeline.config import ConfigError, load_params

    source = PRESETS / f"{args.name}.yaml"
    try:
        load_params(source)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    target = Path(args.to)
    if target.exists():
        shutil.copy2(target, target.with_name(target.name + ".bak"))
    shutil.copy2(source, target)
    print(f"{target}: now the {args.name} preset ({known[args.name]}); the previous file is {target.name}.bak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
