"""The jinja2 environment over ``prompts/`` and the user's own template files.

A template is named either as a file under ``prompts/`` (``judge.j2``) or as a path, relative to the working
directory or absolute (``my_prompts/judge_paper.j2``): each role's ``template`` param takes either, and
:func:`check_template` validates it before any model loads (it exists, parses, and uses exactly the variables
the role provides). Templates render with ``StrictUndefined``: a missing variable is an error, never an empty
string. Model output is passed in as data (a variable's value); jinja never evaluates the contents of a value,
so text such as ``{{ 7 * 7 }}`` inside a response stays literal. A judging template's verdict is declared in a
file beside it (``pipeline.declarations``), never in the template, so :func:`template_hash` covers the prompt
alone.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@functools.lru_cache(maxsize=4)
def environment(root: str | None = None) -> jinja2.Environment:
    # prompts/ first, then the working directory, then absolute paths
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(root or str(PROMPTS_DIR)), jinja2.FileSystemLoader("."),
                                  jinja2.FileSystemLoader("/")])
    return jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, /, **variables: Any) -> str:
    """Render ``prompts/<name>`` (e.g. ``judge.j2``) with the given variables, stripped of outer blank lines."""
    return environment().get_template(name).render(**variables).strip()


def template_hash(name: str) -> str:
    """sha256 (first 16 hex) of a template's source and of every template it includes, for provenance."""
    env = environment()
    digest = hashlib.sha256()
    for n in referenced(name):
        source, _, _ = env.loader.get_source(env, n)  # type: ignore[union-attr]
        digest.update(n.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


def locate(name: str) -> Path:
    """The file the loader reads for template ``name`` (under prompts/, the working directory, or a path)."""
    env = environment()
    _, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    return Path(filename)  # type: ignore[arg-type]


def source_text(name: str) -> str:
    """The source of a template and of every template it includes, joined: what it asks a model for."""
    env = environment()
    return "".join(env.loader.get_source(env, n)[0] for n in referenced(name))  # type: ignore[union-attr]


def referenced(name: str) -> list[str]:
    """``name`` and every template it includes, imports or extends, transitively, in first-seen order."""
    env = environment()
    out: list[str] = []

    def visit(n: str) -> None:
        if n in out:
            return
        out.append(n)
        source, _, _ = env.loader.get_source(env, n)  # type: ignore[union-attr]
        for ref in sorted(r for r in meta.find_referenced_templates(env.parse(source)) if r):
            visit(ref)

    visit(name)
    return out


def variables(name: str) -> set[str]:
    """The variables a template (with everything it includes) reads from its caller."""
    env = environment()
    found: set[str] = set()
    for n in referenced(name):
        source, _, _ = env.loader.get_source(env, n)  # type: ignore[union-attr]
        found |= meta.find_undeclared_variables(env.parse(source))
    return found


def check_template(name: str, provided: frozenset[str], required: frozenset[str]) -> str | None:
    """Why ``name`` cannot serve a role that provides ``provided`` and needs ``required`` used; None if it can."""
    try:
        used = variables(name)
    except jinja2.TemplateNotFound as e:
        return f"no template {e.name!r} under prompts/ or at that path"
    except jinja2.TemplateSyntaxError as e:
        return f"{e.filename or e.name or name}:{e.lineno}: not a valid template — {e.message}"
    unknown = sorted(used - provided)
    if unknown:
        return (f"uses {', '.join('{{ ' + v + ' }}' for v in unknown)}, which this role does not provide (it "
                f"provides {', '.join(sorted(provided))})")
    missing = sorted(required - used)
    if missing:
        return f"never uses {', '.join('{{ ' + v + ' }}' for v in missing)}, which this role needs in the prompt"
    return None
