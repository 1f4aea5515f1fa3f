"""Tasks with known answers, for training with verifiable rewards (Iterative RPO), and loaders for users' files.

Built-in families (:data:`FAMILIES`) are pure functions ``(rng, difficulty) -> Task``: the same seed gives the
same task on every machine and Python version (a ``random.Random`` seeded with a string is hashed with SHA-512,
not with ``hash()``). Each has difficulty knobs with defaults, checked on use (one-line :class:`ConfigError`).

- ``arithmetic``: ``a op b``; ``multi_step``: two or three operations in a short word problem;
  ``comparison``: the larger/smaller of two or three numbers; ``counting``: letters in a word, items in a list;
  ``countdown``: reach a target with the given numbers (checked by :func:`check_countdown`, parsed with ``ast``,
  never evaluated); ``python_function``: a small function with assert tests and a reference solution;
  ``constraints``: an open instruction plus one to three of IFEval's checkable constraints (no known answer).

:func:`generate_split` draws ``n`` tasks with distinct prompts; :func:`train_and_heldout` keeps a held-out split
fixed by its own seed and never repeats one of its prompts in the training split.

:func:`load_tasks` reads a user's JSONL, JSON, CSV, parquet file or a folder saved by ``datasets``'
``save_to_disk``, with a ``fields`` mapping (nested paths like ``turns[0].content``), and recognizes GSM8K
(``#### 1,234`` → ``1234``), MBPP and HumanEval. Every bad row is one line: ``path:N: reason``.

The modules, one idea each:

- :mod:`~pipeline.tasks.base`: the :class:`Task` row, difficulty knobs, rendering an instruction;
- :mod:`~pipeline.tasks.families`: arithmetic, multi_step, comparison, counting, countdown;
- :mod:`~pipeline.tasks.code`: python_function and its function generators (:data:`CODE_TEMPLATES`);
- :mod:`~pipeline.tasks.constraints`: constraints, its types, their arguments and what never goes together;
- :mod:`~pipeline.tasks.splits`: the registry by name and the train / held-out splits;
- :mod:`~pipeline.tasks.loaders`: users' files.

Every instruction a task asks is a jinja template under ``prompts/tasks/`` (one per family, MBPP and HumanEval,
and the ``Final answer:`` line); the numbers and words in it are drawn here, in Python.
"""

from pipeline.tasks import constraints  # the module: its family function is constraints.constraints
from pipeline.tasks.base import VERIFIER_NAMES, Knob, Task, final_answer_line
from pipeline.tasks.code import CODE_TEMPLATES, python_function
from pipeline.tasks.constraints import constraint_sentence, constraints_prompt
from pipeline.tasks.families import (
                                     arithmetic,
                                     check_countdown,
                                     comparison,
                                     countdown,
                                     countdown_prompt,
                                     counting,
                                     multi_step,
)
from pipeline.tasks.loaders import MAPPABLE, load_tasks
from pipeline.tasks.splits import (
                                     FAMILIES,
                                     HELDOUT_SEED,
                                     KNOBS,
                                     Family,
                                     generate_split,
                                     get_family,
                                     resolve_difficulty,
                                     train_and_heldout,
)

__all__ = [
    "CODE_TEMPLATES", "FAMILIES", "HELDOUT_SEED", "KNOBS", "MAPPABLE", "VERIFIER_NAMES", "Family", "Knob", "Task",
    "arithmetic", "check_countdown", "comparison", "constraint_sentence", "constraints", "constraints_prompt",
    "countdown", "countdown_prompt", "counting",
    "final_answer_line", "generate_split", "get_family", "load_tasks", "multi_step", "python_function",
    "resolve_difficulty", "train_and_heldout",
]
