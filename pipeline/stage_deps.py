"""Which code and template files each DVC stage runs, versus the `deps` dvc.yaml declares.

:func:`stage_deps` compares them per stage, :func:`rewrite_deps` makes dvc.yaml match; the command is
``python scripts/stage_deps.py [--check | --write]``, and tests/test_dvc_deps.py runs the comparison on the
repository's dvc.yaml.

A stage's code deps are every project file whose edit can change its outputs, found statically (nothing is
imported or run):

- the entry module of its `cmd` (`python -m stages.judge ...` -> stages/judge.py, `python x/y.py` -> x/y.py);
- the transitive import closure of that module over project packages (top-level folders with an
  `__init__.py`: pipeline/, stages/, bench/, ...): imports anywhere in a file (lazy imports inside functions
  included, `if TYPE_CHECKING:` blocks excluded as they never run), `from pkg import sub`, relative imports,
  `importlib.import_module("literal")`, and the `__init__.py` of every package on the way, since Python
  executes them (so the empty pipeline/__init__.py counts too: DVC-wise any executed file is a dep);
- project code read by literal path: a string literal naming an existing `.py` file in a code folder
  (e.g. "notebooks/win_rates.py", which stages/report.py executes); it joins the closure: its imports count;
- templates: a string literal (or a `/`-joined chain of literals, e.g. `PROMPTS_DIR / "chat_templates" /
  "plain.jinja"`) in a closure module that names a file under prompts/, plus, transitively, what those
  templates include / import / extend (jinja2's `meta.find_referenced_templates`, as pipeline/templates.py's
  `template_hash` does; a dynamic `{% include var %}` cannot be seen and is skipped).

This over-approximates: a literal in an imported module counts even if the stage never calls the function
holding it (e.g. every stage importing pipeline.models gets prompts/chat_templates/plain.jinja). A spurious
re-run is cheap; a stale output is a wrong result.

Only declared deps that are code or templates are compared: files in project packages, top-level *.py,
notebooks/*.py, anything under prompts/, and the stage's own entry script. Data, models and metrics deps
(`data/${key}/...`, `models/${item.prev}`, `metrics`) are ignored, as is any dep holding `${...}`. A directory
dep (e.g. `prompts`) covers the code files in it; it is extra if it covers a file the stage does not use.
Assumes stages run from the repository root (no `wdir`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.meta
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = "prompts"
NOTEBOOKS = "notebooks"


# ------------------------------------------------------------------------------------------ what is code
def _packages(root: Path) -> set[str]:
    return {p.parent.name for p in root.glob("*/__init__.py")}


def is_code(root: Path, rel: str) -> bool:
    """Whether a (root-relative, posix) path names project code or a template, existing or not."""
    top, _, rest = rel.partition("/")
    if top == PROMPTS:
        return bool(rest)
    return rel.endswith(".py") and (not rest or top == NOTEBOOKS or top in _packages(root))


def _expand(root: Path, rel: str) -> set[str]:
    """The code files a declared dep covers: itself, or for a folder the code files inside it."""
    path = root / rel
    if path.is_dir():
        files = (f.relative_to(root).as_posix() for f in path.rglob("*") if f.is_file())
        return {f for f in files if "__pycache__" not in f and is_code(root, f)}
    return {rel}


# --------------------------------------------------------------------------------------------- imports
def _module_file(root: Path, dotted: str) -> str | None:
    base = root.joinpath(*dotted.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f.relative_to(root).as_posix()
    return None


def executed_files(root: Path, dotted: str) -> list[str]:
    """Project files that `import dotted` executes: each package's __init__.py on the way, then the module."""
    parts = dotted.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        f = _module_file(root, ".".join(parts[:i]))
        if f is None:  # not (or no longer) a project module: a third-party name or an attribute
            break
        files.append(f)
    return files


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk in order, minus the bodies of `if TYPE_CHECKING:` (never executed at run time)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
            for stmt in child.orelse:
                yield from _walk(stmt)
        else:
            yield from _walk(child)


def _package_of(rel: str, level: int) -> str:
    """The package a relative import of `level` dots resolves against, for the module file `rel`."""
    parts = rel.removesuffix(".py").split("/")
    parts = parts[:-1]  # a module's package is its folder; for __init__ the folder is the package itself
    return ".".join(parts[: len(parts) - (level - 1)])


def imported_files(root: Path, rel: str, tree: ast.AST) -> set[str]:
    """Project files executed by the imports in one module (anywhere in it, lazy ones included)."""
    found: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(executed_files(root, alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(p for p in (_package_of(rel, node.level), base) if p)
            found.update(executed_files(root, base))
            for alias in node.names:  # `from pkg import sub`: sub may be a submodule, or just a name
                if alias.name != "*" and _module_file(root, f"{base}.{alias.name}"):
                    found.update(executed_files(root, f"{base}.{alias.name}"))
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.update(executed_files(root, node.args[0].value))
    return found


# -------------------------------------------------------------------------------------- literal paths
def literal_paths(tree: ast.AST) -> set[str]:
    """Every string literal, and every `/`-joined run of literals ending an expression (`X / "a" / "b"`)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts: list[str] = []
            while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                if not (isinstance(node.right, ast.Constant) and isinstance(node.right.value, str)):
                    break
                parts.insert(0, node.right.value)
                node = node.left
            else:
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    parts.insert(0, node.value)
            if parts:
                out.add("/".join(parts))
    return out


def prompt_files(root: Path) -> set[str]:
    """Every file under prompts/, prompts/-relative (a set lookup: most literals are not paths at all)."""
    return {f.relative_to(root / PROMPTS).as_posix() for f in (root / PROMPTS).rglob("*") if f.is_file()}


def referenced_templates(root: Path, names: Iterable[str]) -> set[str]:
    """The templates named and all they include / import / extend, transitively (prompts/-relative)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root / PROMPTS)))
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
            ast_ = env.parse(source)
        except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError, UnicodeDecodeError):
            continue  # a missing include is the template test's business; a binary file has no refs
        todo.extend(r for r in jinja2.meta.find_referenced_templates(ast_) if r)  # None: dynamic, unseen
    return seen


# ------------------------------------------------------------------------------------------ closure
def code_closure(root: Path, entries: Iterable[str]) -> tuple[set[str], set[str]]:
    """(code files, templates) a run starting from the root-relative `entries` executes or renders.

    Code files and templates are root-relative posix paths (templates as `prompts/...`).
    """
    code: set[str] = set()
    literal_templates: set[str] = set()
    prompts = prompt_files(root)
    todo = list(entries)
    while todo:
        rel = todo.pop()
        if rel in code:
            continue
        code.add(rel)
        tree = ast.parse((root / rel).read_text(), filename=rel)
        todo.extend(imported_files(root, rel, tree))
        for lit in literal_paths(tree):
            lit = lit.removeprefix("./")
            name = lit.removeprefix(f"{PROMPTS}/")  # named within prompts/, or by its path from the root
            if name in prompts:
                literal_templates.add(name)
            elif lit.endswith(".py") and "\n" not in lit and is_code(root, lit) and (root / lit).is_file():
                todo.append(lit)  # code executed by path (a notebook): its own imports run too
    templates = {f"{PROMPTS}/{t}" for t in referenced_templates(root, literal_templates)}
    return code, templates


def entry_files(root: Path, cmd: str | list[str]) -> list[str]:
    """The Python files a stage's cmd starts: `python -m pkg.mod` or `python path/to/file.py`."""
    entries: list[str] = []
    for line in [cmd] if isinstance(cmd, str) else cmd:
        for m in re.finditer(r"\bpython[\d.]*\s+(?:-\w+\s+)*?(?:-m\s+([\w.]+)|([\w./-]+\.py))", line):
            if m.group(1):
                files = executed_files(root, m.group(1))  # -m imports the parent packages first
                if files and files[-1].endswith("__init__.py"):  # `python -m pkg` runs pkg/__main__.py
                    files.append(files[-1].replace("__init__.py", "__main__.py"))
                entries += files
            else:
                entries.append(m.group(2).removeprefix("./"))
    return [e for e in entries if (root / e).is_file()]


# ------------------------------------------------------------------------------------------- stages
@dataclass
class StageDeps:
    """One dvc.yaml stage: the code/template deps it should declare, and how dvc.yaml differs."""

    name: str
    foreach: bool
    required: set[str]  # code + templates the stage runs
    declared: list[str]  # its declared deps that are code or templates, as written
    missing: list[str] = field(default_factory=list)  # required, covered by no declared dep
    extra: list[str] = field(default_factory=list)  # declared, covering some file the stage does not use

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def message(self) -> str:
        """What to change in dvc.yaml, as the exact `deps:` lines."""
        pad = " " * (8 if self.foreach else 6)  # deps items sit under `do:` for foreach stages
        lines = [f"stage {self.name!r}: dvc.yaml deps do not match the code it runs"]
        if self.missing:
            lines += [f"  add under {self.name}.deps:"] + [f"{pad}- {f}" for f in self.missing]
        if self.extra:
            lines += [f"  remove from {self.name}.deps:"] + [f"{pad}- {f}" for f in self.extra]
        return "\n".join(lines)


def stage_deps(root: Path = ROOT, dvc_file: str = "dvc.yaml") -> list[StageDeps]:
    """Every stage of `dvc_file`, in file order, with its required, missing and extra code/template deps."""
    stages = yaml.safe_load((root / dvc_file).read_text()).get("stages", {})
    result = []
    for name, stage in stages.items():
        body = stage.get("do", stage) if "foreach" in stage else stage
        code, templates = code_closure(root, entry_files(root, body.get("cmd", "")))
        required = code | templates
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
        covers = {d: _expand(root, d) for d in (d.rstrip("/") for d in deps if "${" not in d)}
        # keep a code path (a stale one is extra), the entry script wherever it lives, a folder holding code
        declared = [d for d, files in covers.items() if is_code(root, d) or d in required or files - {d}]
        covered = set().union(*(covers[d] for d in declared))
        sd = StageDeps(name, "foreach" in stage, required, declared)
        sd.missing = sorted(required - covered)
        sd.extra = [d for d in declared if covers[d] - required or not covers[d]]
        result.append(sd)
    return result


def rewrite_deps(root: Path, dvc_file: str = "dvc.yaml") -> None:
    """Rewrite each stage's code and template deps in place (sorted), keeping its data, model and metrics deps
    and every comment: the file's text is edited line by line, not re-serialized."""
    reports = {r.name: r for r in stage_deps(root, dvc_file)}
    lines = (root / dvc_file).read_text().splitlines()
    out: list[str] = []
    stage, i = None, 0
    while i < len(lines):
        line = lines[i]
        head = re.match(r"^  (\w+):\s*$", line)
        stage = head.group(1) if head else stage
        deps = re.match(r"^(\s+)deps:\s*$", line)
        out.append(line)
        i += 1
        if deps and stage in reports:
            item = deps.group(1) + "  - "
            kept = []  # what the comparison ignores: data, models, metrics
            while i < len(lines) and lines[i].startswith(item):
                path = lines[i][len(item):].strip()
                if path not in reports[stage].declared:
                    kept.append(path)
                i += 1
            out += [item + path for path in [*sorted(reports[stage].required), *kept]]
    (root / dvc_file).write_text("\n".join(out) + "\n")
