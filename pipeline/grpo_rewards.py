"""What GRPO is rewarded with: this project's verifiers, as the reward functions TRL's ``GRPOTrainer`` calls.

TRL calls each reward function once per batch of rollouts, as ``f(prompts=..., completions=..., completion_ids=...,
**columns)``: every other column of the training dataset arrives as a list with one entry per completion, and
the function returns one float per completion (``None`` for "not mine", which TRL turns into NaN and leaves
out of the sum). :func:`verifier_reward` builds such a function from an iteration's task prompts; the dataset
it rewards carries each row's ``prompt_id`` (:func:`dataset_rows`).

Each completion is checked as the verify step checks a sampled response (:func:`pipeline.rewards.check`): the
answer read by the declared chain and compared by the task's verifier; code run in the sandbox, where a program
that hangs, crashes or attacks fails its tests and earns 0 (never a crashed run); constraints checked by
IFEval's strict rule. The reward is the verify step's level (:func:`pipeline.rewards.reward_level`): with
``verify.format_levels`` 2 for a correct answer in the asked format, 1 for a correct one read flexibly, 0 for a
wrong one; without it IRPO's 1 / 0. The constraints verifier gives its own level (2 all held, 1 some, 0 none).

Every reward given is also kept (:class:`Reward`, in the order TRL asked): what was checked, what was read,
the reward and why, so a run can be inspected afterwards like the verify step's rows. The per-step statistics
(reward mean and spread, the share of groups whose rewards are all equal, KL, completion length) are TRL's own
logged metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import rewards
from pipeline.config import VerifyConfig
from pipeline.errors import StageError
from pipeline.records import Prompt, user_query


@dataclass(frozen=True)
class Reward:
    """One completion TRL asked a reward for."""

    prompt_id: str
    completion: str
    reward: float
    extracted: str | None
    method: str  # strict | flexible | none, as the verify step counts it
    correct: bool
    detail: str


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """A completion as TRL passes it: the text itself (standard format), or the generated messages
    (conversational format), whose assistant contents are read in order."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if m.get("role", "assistant") == "assistant")


def dataset_rows(tasks: Sequence[Prompt]) -> list[dict[str, Any]]:
    """TRL's conversational prompt rows for ``tasks``, each with its ``prompt_id`` for the reward function."""
    rows = []
    for t in tasks:
        if not rewards.is_task(t):
            raise StageError(f'grpo: prompt "{t.prompt_id}" has no verifier: GRPO trains on tasks with known answers')
        rows.append({"prompt": [{"role": "user", "content": user_query(t.instruction, t.input)}],
                     "prompt_id": t.prompt_id})
    return rows


def score(text: str, task: Prompt, cfg: VerifyConfig) -> Reward:
    """The reward of one completion ``text`` to ``task``."""
    c = rewards.check(text, task, cfg)
    level = c.level if c.level is not None else rewards.reward_level(c.correct, c.method, cfg.format_levels)
    return Reward(task.prompt_id, text, float(level), c.extracted, c.method, c.correct, c.detail)


def verifier_reward(tasks: Sequence[Prompt], cfg: VerifyConfig, kept: list[Reward] | None = None
                    ) -> Callable[..., list[float]]:
    """A TRL reward function over ``tasks`` (by ``prompt_id``); each :class:`Reward` is appended to ``kept``."""
    by_id = {t.prompt_id: t for t in tasks}
    rewards.task_problems(list(by_id.values()))  # a task that could never be checked: one line, before training

    def verifier(prompts: Sequence[Any], completions: Sequence[Any], prompt_id: Sequence[str] | None = None,
                 **_: Any) -> list[float]:
        if prompt_id is None:
            raise StageError("grpo: the training rows carry no prompt_id column (pipeline.grpo_rewards.dataset_rows)")
        out = []
        for pid, completion in zip(prompt_id, completions, strict=True):
            task = by_id.get(pid)
            if task is None:
                raise StageError(f'grpo: a completion to prompt "{pid}", which is not among the iteration\'s tasks')
            rollout = score(completion_text(completion), task, cfg)
            if kept is not None:
                kept.append(rollout)
            out.append(rollout.reward)
        return out

    verifier.__name__ = "verifier"  # TRL names the reward's logged metrics after the function
    return verifier

