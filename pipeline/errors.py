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


class ModelSourceError(PipelineError, RuntimeError):
    """A model cannot be materialized or loaded; the message says why and what to do."""
