"""GRPO's reward functions are the verifiers: the same level for the same text as the verify step gives, in the
form TRL's GRPOTrainer calls (columns as keyword lists, conversational or plain completions)."""

import time

import pytest

from pipeline import grpo_rewards, rewards
from pipeline.config import VerifyConfig
from pipeline.errors import StageError
from pipeline.records import Prompt


def task(pid, verifier="numeric", answer="12", **extra):
    return Prompt(prompt_id=pid, instruction=f"Task {pid}", source="test", answer=answer, verifier=verifier, **extra)


ADD = task("add")
COUNTDOWN = task("cd", verifier="countdown", answer="", inputs={"numbers": [3, 5, 1], "target": 16})
CODE = task("code", verifier="python_tests", answer=None, tests=["assert double(2) == 4", "assert double(-1) == -2"],
            inputs={"entry_point": "double"})
NO_COMMA = task("nc", verifier="constraints", answer="",
                inputs={"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})
TASKS = [ADD, COUNTDOWN, CODE, NO_COMMA]

# (task, completion, reward with format levels, reward without)
TABLE = [
    (ADD, "7 + 5 = 12\nFinal answer: 12", 2.0, 1.0),  # right, in the asked format
    (ADD, "7 + 5 makes 12, I think.", 1.0, 1.0),  # right, read flexibly (the last number)
    (ADD, "Final answer: 13", 0.0, 0.0),  # wrong
    (ADD, "no idea", 0.0, 0.0),  # nothing read
    (COUNTDOWN, "Final answer: 3 * 5 + 1", 2.0, 1.0),
    (COUNTDOWN, "Final answer: 3 * 5 + 5", 0.0, 0.0),  # 5 used twice
    (CODE, "```python\ndef double(x):\n    return 2 * x\n```", 2.0, 1.0),
    (CODE, "```python\ndef double(x):\n    return x + 2\n```", 0.0, 0.0),  # fails a test
    (NO_COMMA, "Plain words only here.", 2.0, 2.0),  # the constraints verifier's own level
    (NO_COMMA, "Words, and a comma.", 0.0, 0.0),
]


@pytest.mark.parametrize("format_levels", [True, False])
def test_the_reward_is_the_verify_steps_level(format_levels):
    cfg = VerifyConfig(format_levels=format_levels)
    kept = []
    reward = grpo_rewards.verifier_reward(TASKS, cfg, kept)
    got = reward(prompts=[[]] * len(TABLE), completions=[c for _, c, _, _ in TABLE],
                 prompt_id=[t.prompt_id for t, _, _, _ in TABLE])
    assert got == [with_levels if format_levels else without for _, _, with_levels, without in TABLE]
    for (t, text, _, _), rollout in zip(TABLE, kept):
        c = rewards.check(text, t, cfg)
        assert (rollout.prompt_id, rollout.completion, rollout.correct, rollout.method) == (
            t.prompt_id, text, c.correct, c.method)
    assert kept[2].detail == "wrong answer" and kept[2].extracted == "13"


def test_conversational_completions_are_read_as_their_assistant_text():
    reward = grpo_rewards.verifier_reward([ADD], VerifyConfig())
    completion = [{"role": "assistant", "content": "Sum.\nFinal answer: 12"}]
    assert reward(prompts=[[{"role": "user", "content": "Task add"}]], completions=[completion],
                  prompt_id=["add"], trainer_state=None, log_extra=None) == [2.0]


def test_a_program_that_hangs_or_attacks_earns_zero_and_the_run_goes_on():
    cfg = VerifyConfig(timeout_s=1.0)
    reward = grpo_rewards.verifier_reward([CODE], cfg)
    hang = "```python\ndef double(x):\n    while True:\n        pass\n```"
    attack = ("```python\nimport os\nos.system('touch /tmp/grpo-reward-attack')\nopen('/etc/passwd').read()\n"
              "def double(x):\n    raise SystemExit(0)\n```")
    start = time.monotonic()
    assert reward(prompts=[[], []], completions=[hang, attack], prompt_id=["code", "code"]) == [0.0, 0.0]
    assert time.monotonic() - start < 30


def test_rows_and_reward_must_come_from_the_same_tasks():
    reward = grpo_rewards.verifier_reward([ADD], VerifyConfig())
    with pytest.raises(StageError, match='a completion to prompt "other", which is not among'):
        reward(prompts=[[]], completions=["Final answer: 12"], prompt_id=["other"])
    with pytest.raises(StageError, match="no prompt_id column"):
        reward(prompts=[[]], completions=["Final answer: 12"])
    open_prompt = Prompt(prompt_id="open", instruction="Write a poem.", source="test")
    with pytest.raises(StageError, match='prompt "open" has no verifier'):
        grpo_rewards.dataset_rows([ADD, open_prompt])
    assert grpo_rewards.dataset_rows([ADD]) == [{"prompt": [{"role": "user", "content": "Task add"}],
                                                 "prompt_id": "add"}]


def test_a_task_that_could_never_be_checked_stops_before_training():
    with pytest.raises(StageError, match='task prompt "bad"'):
        grpo_rewards.verifier_reward([task("bad", answer="")], VerifyConfig())
