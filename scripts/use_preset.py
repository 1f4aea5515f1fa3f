"""Switch the project to a method's preset: params/<name>.yaml becomes params.yaml (validated first).

    python scripts/use_preset.py --list            # the presets and the paper each follows
    python scripts/use_preset.py meta_rewarding    # params.yaml <- params/meta_rewarding.yaml
    dvc repro                                      # or: dvc exp run -S self_instruct.num_prompts=3 ...

A preset holds the paper's values, each with the section it comes from (values the paper does not state are
marked "ours"); keys it leaves out take the defaults documented in pipeline/config.py. The current params.yaml
is kept as params.yaml.bak. `git diff params.yaml` shows what changed. A preset that cannot be read or is not
valid is listed as broken and refused with one line; the others still work.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PRESETS = REPO / "params"


class PresetError(Exception):
    """A one-line reason a preset cannot be used, or the target cannot be written."""


def about(path: Path) -> str:
    """The preset's first comment line (which paper it follows); PresetError when the file is unreadable."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise PresetError(f"{path}: not UTF-8 text (byte {e.start + 1})") from None
    except OSError as e:
        raise PresetError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not text.strip():
        raise PresetError(f"{path}: empty — a preset holds params.yaml sections; fill it or remove it")
    first = text.splitlines()[0]
    return first.lstrip("# ") if first.startswith("#") else ""


def check(path: Path) -> str:
    """``about(path)`` once the preset also loads as valid params (every value checked)."""
    from pipeline.config import ConfigError, load_params

    line = about(path)
    try:
        load_params(path)
    except ConfigError as e:
        raise PresetError(str(e)) from None
    return line


def presets(folder: Path = PRESETS) -> dict[str, Path]:
    """name -> file of every preset in ``folder``."""
    if not folder.is_dir():
        raise PresetError(f"{folder}: no such folder of presets")
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def listing(known: dict[str, Path]) -> str:
    rows = []
    for name, path in known.items():
        try:
            rows.append(f"{name:16} {check(path)}")
        except PresetError as e:
            rows.append(f"{name:16} BROKEN: {e}")
    return "\n".join(rows)


def target_of(to: str) -> Path:
    """Where to write; PresetError (before anything is written) when it cannot be a file there."""
    target = Path(to)
    if target.is_dir():
        raise PresetError(f"--to {to}: a folder — name the file to write, e.g. {target / 'params.yaml'}")
    parent = target.parent
    if not parent.exists():
        raise PresetError(f"--to {to}: no folder {parent} — create it first, or write to another path")
    if not parent.is_dir():
        raise PresetError(f"--to {to}: {parent} is a file, not a folder")
    return target


def _atomic_write(path: Path, data: bytes) -> None:
    """``path`` holds either its old bytes or ``data``, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def use(name: str, folder: Path, to: str) -> str:
    """Validate preset ``name``, then write it to ``to`` (the old file kept as .bak); the line to print."""
    known = presets(folder)
    if name not in known:
        near = difflib.get_close_matches(name, list(known), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise PresetError(f"no preset {name!r} — {hint}known: {', '.join(known) or f'none in {folder}'}")
    source = known[name]
    line = check(source)
    target = target_of(to)
    data, backup = source.read_bytes(), target.exists()
    try:
        if backup:
            _atomic_write(target.with_name(target.name + ".bak"), target.read_bytes())
        _atomic_write(target, data)
    except OSError as e:
        raise PresetError(f"--to {to}: cannot be written ({e.strerror or e})") from None
    return f"{target}: now the {name} preset ({line})" + (f"; the previous file is {target.name}.bak" if backup else "")


def main(argv: list[str] | None = None) -> int:
    # ------------------------------------------------------------------------------------------- arguments
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="preset name (a file params/<name>.yaml)")
    parser.add_argument("--list", action="store_true", help="list the presets (a broken one is marked BROKEN)")
    parser.add_argument("--to", default="params.yaml", help="where to write (default: params.yaml)")
    parser.add_argument("--presets", default=str(PRESETS), help="folder of presets (default: the repository's "
                        "params/)")
    args = parser.parse_args(argv)
    # ------------------------------------------------------------------------------------------- work
    folder = Path(args.presets)
    try:
        if args.list or not args.name:
            print(listing(presets(folder)))
            return 0
        print(use(args.name, folder, args.to))
    except PresetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
