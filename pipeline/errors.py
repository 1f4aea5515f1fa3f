"""The failures a user can fix; each message is one line meant to be shown as is (``path:line: reason``).

A stage entry point turns any :class:`PipelineError` into that line on stderr and exit code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error whose message tells the user what to change."""


class ConfigError(PipelineError, ValueError):
    """A bad value in params.yaml."""


class RecordError(PipelineError, ValueError):
    """A bad line in an input file (``path:line: reason``), or a missing input."""


class StageError(PipelineError, RuntimeError):
    """A stage cannot go on (degenerate data, missing upstream output); the message says what to change."""


class OutputError(PipelineError, OSError):
    """An output could not be written (disk full, read-only, no permission); nothing partial was left behind."""

    @classmethod
    def of(cls, path: object, e: OSError) -> OutputError:
        hint = {28: "free some space (e.g. `dvc gc`, old .work/ folders)", 30: "the file system is read-only",
                13: "check the folder's permissions"}.get(e.errno or 0, "check the disk")
        return cls(f"{path}: cannot write — {e.strerror or e} — {hint}; nothing was left half written")


class ModelSourceError(PipelineError, RuntimeError):
    """A model cannot be materialized or loaded; the message says why and what to do."""
