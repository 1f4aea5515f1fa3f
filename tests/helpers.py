"""Helpers shared by several test modules: the tiny params, stage runners, row builders and scripted models.

A test module imports what it needs from here (``from tests.helpers import TINY_PARAMS, run_stage``), never
from another test module, so that running or editing one module never depends on another's tests.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.records import Judgment, Response
from tests.fakes import ScriptedEngine

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------- tiny iterations
TINY_PARAMS = {  # float32 everywhere (engine, sft, dpo): the same numbers on every CPU, and the float32 path in
    # which generation log-probs are reused as the DPO reference; tests of the dtype policy set it themselves
    "engine": {"backend": "hf", "batch_size": 16, "shard_size": 3, "dtype": "float32"},
    "self_instruct": {"num_prompts": 2, "max_requests": 8, "shard_size": 4, "max_new_tokens": 24},
    "sample": {"n": 3, "max_new_tokens": 12, "thoughts": "none"},
    "judge": {"k": 2, "max_new_tokens": 10, "scoring": "expected"},
    "meta_judge": {"num_judgments": 3, "max_new_tokens": 10, "tie_margin": 0.0},
    "pairs": {"min_pairs": 1, "truncated_response": "keep"},  # 12 tokens of a random model: every response is cut
    "sft": {"dtype": "float32"},
    "dpo": {"batch_size": 2, "max_length": 256, "learning_rate": 1e-4, "save_steps": 1000, "dtype": "float32"},
    "iterations": {"M1": {"prev": "M0_sft"}},
}


def run_stage(name, *args, check=True, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", f"stages.{name}", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def write_prompts(workdir, n=3):
    from pipeline.records import Prompt, write_jsonl

    write_jsonl(workdir / "data/M1/prompts.jsonl", [
        Prompt(prompt_id=f"p{i}", instruction=f"Write one sentence about the number {i}.", source="test")
        for i in range(n)])


# ------------------------------------------------------------------------- rows for in-process steps
MADE_BY = {"model": "M0_sft", "model_sha256": "abc", "iteration": "M1"}


def response(rid, pid, text, parse_ok=True, index=0):
    return Response(response_id=rid, prompt_id=pid, sample_index=index, instruction=f"Question {pid}?",
                    prompt_text=f"Question {pid}?", output=text, thought="", response=text, parse_ok=parse_ok,
                    num_tokens=len(text), finish_reason="stop", token_ids=[1, 2], logprob=-1.0, stop_logprob=-0.5,
                    provenance={"model_sha256": "abc"})


def judgment(jid, rid, pid, index, text, score):
    return Judgment(judgment_id=jid, response_id=rid, prompt_id=pid, judge_index=index, text=text, score=score,
                    method="strict", token_ids=[3], logprob=-2.0, stop_logprob=-0.1,
                    provenance={"model_sha256": "abc"})



QUALITY = re.compile(r"Judgment A:\nq(\d).*Judgment B:\nq(\d)", re.DOTALL)


def meta_setup():
    responses = [response("r1", "p1", "alpha"), response("r2", "p1", "beta"), response("r3", "p2", "gamma")]
    judgments = [judgment("j10", "r1", "p1", 0, "q2 weak\nScore: 2", 2.0),
                 judgment("j11", "r1", "p1", 1, "q9 sharp\nScore: 4", 4.0),
                 judgment("j20", "r2", "p1", 0, "q3\nScore: 3", 3.0),
                 judgment("j21", "r2", "p1", 1, "q3\nScore: 3", 3.0),
                 judgment("j30", "r3", "p2", 0, "q7\nScore: 5", 5.0),
                 judgment("j31", "r3", "p2", 1, "q1\nScore: 1", 1.0)]

    def reply(prompt, i):
        if "Judgment A:" not in prompt:  # an extra judgment, drawn with the judge template
            return "q5 middling\nScore: 3" if "alpha" in prompt else "q4 fair\nScore: 3"
        a, b = map(int, QUALITY.search(prompt).groups())
        if "Response: gamma" in prompt:
            return "hmm"  # no verdict written: forced
        return "Winner: Judgment A" if a > b else "Winner: Judgment B"

    def choice(context, options):
        a, b = map(int, QUALITY.search(context).groups())
        return [float(a - b), 0.0]  # log p(A) - log p(B) = quality difference

    return responses, judgments, ScriptedEngine(reply, choice, cache_choices=True)



# --------------------------------------------------------------------------- presets, scripted
SIZES = {  # what a 2-core CPU can run in seconds; every other value is the preset's
    "engine": {"backend": "hf", "batch_size": 16, "shard_size": 8},
    "self_instruct": {"num_prompts": 2, "max_requests": 8, "shard_size": 8, "max_new_tokens": 48},
    "sample": {"max_new_tokens": 12},
    "judge": {"max_new_tokens": 10},
    "meta_judge": {"num_judgments": 3, "max_new_tokens": 10},
    "dpo": {"epochs": 1, "batch_size": 2, "max_length": 256},
}


def shrunk(name, sizes=SIZES):
    params = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
    for section, values in sizes.items():
        params.setdefault(section, {}).update(values)
    params["iterations"] = {"M1": params["iterations"]["M1"]}
    return params



def no_comma_tasks(prefix, subject, n=3):
    """Constraint tasks (the task-file format) with one no-comma constraint, which the scripted answers keep on even
    samples and break on odd ones."""
    return [{"task_id": f"{prefix}{k}", "family": "constraints", "prompt": f"Describe {subject} {k}.\n\nWrite your "
             "reply without a single comma.", "answer": "", "verifier": "constraints",
             "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]} for k in range(n)]


def arithmetic_answer(prompt, i):
    """Sample i of an arithmetic task: right in the asked format, right without it, or wrong, in turn."""
    a, op, b = re.search(r"What is (\d+) ([-+*]) (\d+)\?", prompt).groups()
    right = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    return [f"{a} {op} {b} = {right}.\nFinal answer: {right}", f"It is {right}.",
            f"{a} {op} {b} = {right + 1}.\nFinal answer: {right + 1}"][i % 3]


def countdown_answer(prompt, right):
    """An expression from the prompt's numbers that reaches its target (brute force), or a wrong one."""
    numbers = [int(n) for n in re.search(r"Using the numbers ([\d, and]+), each", prompt).group(1)
               .replace(" and ", ", ").split(", ")]
    target = int(re.search(r"that equals (\d+)", prompt).group(1))
    if right:
        for k in range(1, len(numbers) + 1):
            for nums in itertools.permutations(numbers, k):
                for ops in itertools.product("+-*", repeat=k - 1):
                    flat = str(nums[0]) + "".join(f" {o} {n}" for o, n in zip(ops, nums[1:]))
                    nested = f"{nums[0]} {ops[0]} ({nums[1]} {ops[1]} {nums[2]})" if k == 3 else flat
                    for expr in (flat, nested):
                        if eval(expr) == target:  # test code on numbers it built itself
                            return f"Final answer: {expr}"
    return "Final answer: 1000 * 1000"


def scripted_model(prompt, i):
    """A model that follows every role's format (a random tiny model follows none): answers of growing length,
    thoughts when asked, judge scores that vary with the answer (one in six unparseable), meta-verdicts,
    arithmetic answers right or wrong, answers that keep or break a no-comma constraint, a pairwise judge
    whose even samples prefer the response without a comma, and a similar instruction x' (Self-Taught Evaluator)
    with its own answer."""
    if "Judgment A:" in prompt:
        return "A applies the rubric more closely.\nWinner: Judgement A" if i % 2 == 0 else "Hard to say."
    if "Write a new instruction on the same subject" in prompt:  # Self-Taught Evaluator: x' for x
        return "Here is one.\nNew instruction: Tell me about a different topic instead."
    if "a different topic instead" in prompt:  # the answer to x'
        return "An answer about another topic."
    if "tie is not allowed" in prompt:  # the pairwise judge: even samples prefer the response without a comma
        a = re.search(r"Response A:\n(.*?)\n\nResponse B:", prompt, re.DOTALL).group(1)
        pick = "B" if ("," in a) == (i % 2 == 0) else "A"
        return f"One of them keeps the instruction better.\nWinner: {pick}"
    judged = re.search(r"<response>(.*?)</response>|\nResponse: (.*?)\n", prompt, re.DOTALL)
    if judged:
        digit = len(judged.group(1) or judged.group(2) or "") // 7 + i  # varies with the response and the sample
        return "Some justification." if digit % 6 == 5 else f"Brief justification.\nScore: {digit % 5}"
    if "A note on that attempt" in prompt:  # a retry: right after an even-numbered note
        right = int(re.search(r"Note (\d+)", prompt).group(1)) % 2 == 0
        if "Final answer: <number>" in prompt:
            return arithmetic_answer(prompt, 0 if right else 2)
        return countdown_answer(prompt, right)
    if "In two or three sentences" in prompt:
        return f"Note {i}: check each step."
    if "Final answer: <expression>" in prompt:
        return countdown_answer(prompt, i % 2 == 0)
    if "Final answer: <number>" in prompt:
        return arithmetic_answer(prompt, i)
    answer = f"Answer {i}: " + "detail " * i
    if "without a single comma" in prompt or "not use any commas" in prompt:  # a constraint: every other one breaks it
        answer += ", and more" if i % 2 else ""
    if "<R>" in prompt:
        return f"Draft and its evaluation.\n<R> {answer}"
    if "Here is my thought process:" in prompt:
        return f"Here is my thought process:\nThink {i}.\n\nHere is my response:\n{answer}"
    return answer


def choice(context, options):
    """Forced-option log-probs that vary with the context (so expected scores differ between responses)."""
    h = sum(map(ord, context))
    return [-1.0 - 0.1 * ((h + 3 * k) % 7) for k in range(len(options))]

