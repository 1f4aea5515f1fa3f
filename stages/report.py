"""Execute notebooks/win_rates.py into reports/win_rates.ipynb (figures as PNG, table as CSV).

    python -m stages.report

Reads: params.yaml (iterations), metrics/<key>/*.json, data/<key>/eval_*.jsonl.
Writes: reports/win_rates.ipynb, reports/summary.csv, reports/*.png.
"""

from __future__ import annotations

from pathlib import Path

from stages import _common


def execute(notebook: Path, output: Path, root: str = ".", out_dir: str = "reports") -> None:
    import jupytext
    import nbclient

    nb = jupytext.read(notebook)
    for cell in nb.cells:  # the parameters cell, papermill-style
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = f"root = {root!r}\nout_dir = {out_dir!r}"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": root}}).execute()
    output.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, output, fmt="ipynb")


def main() -> None:
    _common.parser(__doc__, iteration=False).parse_args()
    execute(Path("notebooks/win_rates.py"), Path("reports/win_rates.ipynb"))


if __name__ == "__main__":
    _common.run(main)
