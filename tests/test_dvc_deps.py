"""dvc.yaml declares exactly the code and templates each stage runs (pipeline/stage_deps.py), and that tool's
closure computation on a tiny synthetic project (its command, scripts/stage_deps.py, as a subprocess).

    python -m pytest -q tests/test_dvc_deps.py              # all
    python -m pytest -q tests/test_dvc_deps.py -k "not real"  # the tool only, not the repo's dvc.yaml
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from pipeline import stage_deps as sd

ROOT = Path(__file__).resolve().parent.parent


def tool(*args: str) -> subprocess.CompletedProcess:
    """``python scripts/stage_deps.py ARGS``, as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "stage_deps.py"), *args], capture_output=True,
                          text=True)


# ------------------------------------------------------------------------------------------- the repo
@functools.cache
def _real() -> dict:
    return {r.name: r for r in sd.stage_deps(ROOT)}


@pytest.mark.parametrize("stage", list(_real()))
def test_real_dvc_yaml_deps_match_code(stage: str) -> None:
    report = _real()[stage]
    assert report.ok, report.message() + "\n(see: python scripts/stage_deps.py)"


# ------------------------------------------------------------------------------- a synthetic project
FILES = {
    "pkg/__init__.py": "helper = 1\n",
    "pkg/a.py": """
        import json
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from pkg import unused  # never executed


        def f():
            from pkg import sub, helper  # lazy; sub is a subpackage, helper a plain name
            from pkg.sub.mod import X
            return X
        """,
    "pkg/sub/__init__.py": "",
    "pkg/sub/mod.py": """
        from pathlib import Path

        from . import rel
        from .. import b

        TEMPLATE = "main.j2"
        CHAT = Path(__file__).parent / "chat" / "plain.jinja"
        X = 1
        """,
    "pkg/sub/rel.py": "",
    "pkg/b.py": 'NOTEBOOK = "notebooks/nb.py"\n',
    "pkg/unused.py": 'import pkg.a\nT = "unused.j2"\n',
    "pkg/deep/__init__.py": "",
    "pkg/deep/leaf.py": "",
    "notebooks/nb.py": "import pkg.deep.leaf\n",
    "stages/__init__.py": "",
    "stages/go.py": "import os\nfrom pkg import a\n",
    "stages/other.py": "import os\n",
    "scripts/run.py": "import pkg.sub.rel\n",  # not in a package: an entry script all the same
    "prompts/main.j2": '{% include "_part.j2" %}\n',
    "prompts/_part.j2": '{% import "macros/m.j2" as m %}{{ m.x() }}\n',
    "prompts/macros/m.j2": "{% macro x() %}x{% endmacro %}\n",
    "prompts/chat/plain.jinja": "plain\n",
    "prompts/unused.j2": "unused\n",
    "models/M0/modeling.py": "",  # a model folder's code is data, not project code
    "metrics/M1/x.json": "{}",
    "dvc.yaml": """
        stages:
          one:
            foreach:
              M1: {prev: M0}
            do:
              cmd: python -m stages.go --iteration ${key}
              deps:
                - stages/go.py
                - pkg/a.py
                - pkg/unused.py
                - prompts
                - data/${key}/x.jsonl
                - models/${item.prev}
                - metrics
          two:
            cmd: python -m stages.other
            deps:
              - stages/other.py
              - prompts/macros
          three:
            cmd: python scripts/run.py
            deps:
              - scripts/run.py
        """,
}
GO_CODE = {"stages/__init__.py", "stages/go.py", "pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py",
           "pkg/sub/mod.py", "pkg/sub/rel.py", "pkg/b.py", "notebooks/nb.py", "pkg/deep/__init__.py",
           "pkg/deep/leaf.py"}
GO_TEMPLATES = {"prompts/main.j2", "prompts/_part.j2", "prompts/macros/m.j2", "prompts/chat/plain.jinja"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(dedent(text).lstrip("\n"))
    return tmp_path


def _imports(root: Path, rel: str) -> set[str]:
    return sd.imported_files(root, rel, sd.ast.parse((root / rel).read_text()))


def test_executed_files_are_the_packages_on_the_way_then_the_module(project: Path) -> None:
    assert sd.executed_files(project, "pkg.sub.mod") == ["pkg/__init__.py", "pkg/sub/__init__.py",
                                                         "pkg/sub/mod.py"]
    assert sd.executed_files(project, "pkg.sub.X") == ["pkg/__init__.py", "pkg/sub/__init__.py"]  # X: a name
    assert sd.executed_files(project, "json") == []


def test_lazy_and_from_imports_count_type_checking_does_not(project: Path) -> None:
    assert _imports(project, "pkg/a.py") == {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py"}


def test_relative_imports(project: Path) -> None:
    assert _imports(project, "pkg/sub/mod.py") == {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/rel.py",
                                                   "pkg/b.py"}


def test_literal_paths_join_slash_chains() -> None:
    tree = sd.ast.parse('from pathlib import Path\nP = Path("x") / "chat" / "plain.jinja"\nQ = "a.j2"\n')
    assert {"chat/plain.jinja", "a.j2", "x"} <= sd.literal_paths(tree)
    assert "x/chat/plain.jinja" not in sd.literal_paths(tree)  # Path(...) is no literal; the run after it is


def test_template_include_import_chain(project: Path) -> None:
    assert sd.referenced_templates(project, ["main.j2"]) == {"main.j2", "_part.j2", "macros/m.j2"}


def test_closure_of_a_stage(project: Path) -> None:
    entries = sd.entry_files(project, "python -m stages.go --iteration ${key}")
    assert entries == ["stages/__init__.py", "stages/go.py"]
    assert sd.code_closure(project, entries) == (GO_CODE, GO_TEMPLATES)


def test_missing_and_extra_versus_dvc_yaml(project: Path) -> None:
    one, two, three = sd.stage_deps(project)
    assert one.required == GO_CODE | GO_TEMPLATES
    assert one.declared == ["stages/go.py", "pkg/a.py", "pkg/unused.py", "prompts"]  # no data/models/metrics
    assert one.missing == sorted(GO_CODE - {"stages/go.py", "pkg/a.py"})  # `prompts` covers the templates
    assert one.extra == ["pkg/unused.py", "prompts"]  # prompts/ also holds unused.j2
    assert "        - pkg/b.py" in one.message() and "        - pkg/unused.py" in one.message()
    assert (two.missing, two.extra) == (["stages/__init__.py"], ["prompts/macros"])
    assert "remove from two.deps:\n      - prompts/macros" in two.message()
    assert three.missing == ["pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/rel.py"] and not three.extra


def test_check_exits_1_on_mismatch_and_0_once_fixed(project: Path) -> None:
    assert tool("--root", str(project), "--check").returncode == 1
    one, two, three = sd.stage_deps(project)
    fixed = {"stages": {
        "one": {"foreach": {"M1": {"prev": "M0"}},
                "do": {"cmd": "python -m stages.go --iteration ${key}",
                       "deps": sorted(one.required) + ["data/${key}/x.jsonl", "models/${item.prev}"]}},
        "two": {"cmd": "python -m stages.other", "deps": sorted(two.required)},
        "three": {"cmd": "python scripts/run.py", "deps": sorted(three.required)}}}
    (project / "dvc.yaml").write_text(sd.yaml.safe_dump(fixed))
    proc = tool("--root", str(project), "--check")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 stages match dvc.yaml" in proc.stdout


def test_write_fixes_the_deps_and_keeps_data_deps_and_comments(project: Path) -> None:
    text = (project / "dvc.yaml").read_text()
    (project / "dvc.yaml").write_text("# a comment that must survive\n" + text)
    assert tool("--root", str(project), "--write", "--check").returncode == 0
    after = (project / "dvc.yaml").read_text()
    assert after.startswith("# a comment that must survive\n")
    one, two, three = sd.stage_deps(project)
    assert one.declared == sorted(GO_CODE | GO_TEMPLATES) and not one.missing and not one.extra
    assert "        - data/${key}/x.jsonl\n        - models/${item.prev}\n        - metrics\n" in after
    assert "prompts/macros\n" not in after  # the directory dep that covered an unused template is gone
