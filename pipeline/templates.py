"""The jinja2 environment over ``prompts/``.

Templates render with ``StrictUndefined``: a missing variable is an error, never an empty string. Model
output is passed in as data (a variable's value); jinja never evaluates the contents of a value, so text
such as ``{{ 7 * 7 }}`` inside a response stays literal.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@functools.lru_cache(maxsize=4)
def environment(root: str | None = None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root or str(PROMPTS_DIR)),
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
    seen: set[str] = set()
    digest = hashlib.sha256()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        source, _, _ = env.loader.get_source(env, n)  # type: ignore[union-attr]
        digest.update(n.encode() + b"\0" + source.encode() + b"\0")
        from jinja2 import meta

        for ref in sorted(r for r in meta.find_referenced_templates(env.parse(source)) if r):
            visit(ref)

    visit(name)
    return digest.hexdigest()[:16]
