"""Bad-input corpus rows for params and faults found by stages before (or instead of) loading a model.

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.corpus_kit import GOOD, PROMPTS, Case, P, chain, copy_model, jsonl, params, write

ONE = {"M1": {"prev": "M0_sft"}}
PROMPT = jsonl(PROMPTS, GOOD[PROMPTS])
M1 = copy_model("models/M0_sft", "models/M1")
M0 = copy_model("models/M0_sft", "models/M0")


def pairs(n: int) -> Any:
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        from tests.fakes import write_pairs

        write_pairs(wd, n)
    return setup


def iteration(**spec: Any) -> Any:
    return params({"iterations": {"M1": {"prev": "M0_sft", **spec}}})


def launch(section: str, **spec: Any) -> Any:
    return params({section: {"launch": spec}})


LONG_PROMPT = jsonl(PROMPTS, {**GOOD[PROMPTS], "instruction": "Describe the sea in detail. " * 20})
SHORT_GENERATION = {"evaluate": {"max_new_tokens": 32, "compare_max_new_tokens": 32}, "sft": {"eval_max_new_tokens": 32}}
NOT_A_MODEL = ("neither previous, current, base, nor one of M0, M0_sft, M1, nor a model folder (write a path "
               "with a /)")

CASES = [
    # per-iteration overrides: one merged section, named by the iteration
    Case("override-breaks-a-two-key-rule", "sample@M1", iteration(**{"self_instruct.num_prompts": 0}),
         P + "iterations.M1: self_instruct.num_prompts: 0 — with self_instruct.tasks 0 too, an iteration has no "
         "prompts; set one of them"),
    Case("override-nested-breaks-a-two-key-rule", "sample@M1", iteration(self_instruct={"num_prompts": 0}),
         P + "iterations.M1: self_instruct.num_prompts: 0 — with self_instruct.tasks 0 too, an iteration has no "
         "prompts; set one of them"),
    Case("override-data-nested", "sample@M1", iteration(data={"train_tasks": {"path": "x.jsonl"}}),
         (P + "iterations.M1.data.train_tasks: a data source cannot change per iteration", "top-level data:")),
    Case("override-data-dotted", "evaluate@M1", iteration(**{"data.eval_prompts": {"path": "x.jsonl"}}),
         (P + "iterations.M1.data.eval_prompts: a data source cannot change per iteration",)),
    Case("override-bad-type", "sample@M1", iteration(**{"sample.n": "many"}),
         P + "iterations.M1.sample.n: 'many' — must be an integer"),
    Case("override-greedy-with-n", "sample@M1", iteration(sample={"temperature": 0}),
         (P + "iterations.M1: sample.temperature: 0 — greedy decoding gives the same response 3 times",)),
    Case("override-unknown-section-key", "sample@M1", iteration(**{"smaple.n": 3}),
         (P + "iterations.M1.smaple.n: unknown key", "did you mean 'sample'?")),
    Case("override-lora-bad-rank", "dpo@M1", iteration(**{"dpo.lora": {"r": 0}}),
         (P + "iterations.M1.dpo.lora.r: 0 — must be at least 1",)),
    # sampling that can never form a pair
    Case("greedy-samples", "sample@M1", params({"sample": {"temperature": 0, "n": 4}}),
         P + "sample.temperature: 0 — greedy decoding gives the same response 4 times (sample.n), so no preference "
         "pair can ever form; sample with a temperature above 0"),
    Case("greedy-samples-float", "sample@M1", params({"sample": {"temperature": 0.0, "n": 2}}),
         (P + "sample.temperature: 0 — greedy decoding gives the same response 2 times",)),
    Case("truncated-response-unknown", "pairs@M1", params({"pairs": {"truncated_response": "reject"}}),
         (P + "pairs.truncated_response: 'reject' — must be",)),
    # launch settings torchrun would choke on, or hang with
    Case("launch-rank-above-machines", "dpo@M1", launch("dpo", machines=2, machine_rank=5),
         P + "dpo.launch: machine_rank: 5 — must be below machines (2): ranks count from 0"),
    Case("launch-rank-equals-machines", "sft", launch("sft", machines=2, machine_rank=2),
         P + "sft.launch: machine_rank: 2 — must be below machines (2): ranks count from 0"),
    Case("launch-port-too-high", "dpo@M1", launch("dpo", main_process_port=70000),
         P + "dpo.launch.main_process_port: 70000 — must be between 1 and 65535 (a TCP port)"),
    Case("launch-port-zero", "dpo@M1", launch("dpo", main_process_port=0),
         P + "dpo.launch.main_process_port: 0 — must be between 1 and 65535 (a TCP port)"),
    Case("launch-ip-not-an-address", "dpo@M1", launch("dpo", main_process_ip="not an ip!"),
         P + "dpo.launch.main_process_ip: 'not an ip!' — neither an IP address nor a host name"),
    Case("launch-ip-with-port", "sft", launch("sft", main_process_ip="10.0.0.1:29500"),
         P + "sft.launch.main_process_ip: '10.0.0.1:29500' — neither an IP address nor a host name"),
    Case("launch-machines-zero", "dpo@M1", launch("dpo", machines=0),
         (P + "dpo.launch.machines: 0 — must be at least 1",)),
    # training lengths and steps, measured on the examples before any model loads
    Case("dpo-max-length-below-every-prompt", "dpo@M1", chain(pairs(2), params({"dpo": {"max_length": 32}})),
         ("dpo.max_length: 32 — every example's prompt fills it", "raise it above")),
    Case("sft-max-length-below-every-prompt", "sft", chain(M0, params({"sft": {"max_length": 32}})),
         ("sft.max_length: 32 — every example's prompt fills it", "raise it above")),
    Case("lora-target-typo", "dpo@M1", chain(pairs(2), params({"dpo": {"lora": {"target_modules": ["qproj"]}}})),
         ("dpo.lora.target_modules: 'qproj' — no module of models/M0_sft has that name; did you mean 'q_proj'?",)),
    Case("lora-target-unknown", "dpo@M1", chain(pairs(2), params({"dpo": {"lora": {"target_modules": ["c_attn"]}}})),
         ("dpo.lora.target_modules: 'c_attn' — no module of models/M0_sft has that name;", "its linear layers:")),
    Case("accumulation-beyond-an-epoch", "dpo@M1",
         chain(pairs(3), params({"dpo": {"gradient_accumulation_steps": 1000}})),
         "dpo.gradient_accumulation_steps: 1000 — the 3 pairs make 2 batch(es) of dpo.batch_size 2 per process, so "
         "no step could accumulate that many; at most 2 here"),
    # the engine's context and the machine's cores
    Case("hf-prompt-over-max-model-len", "sample@M1", chain(LONG_PROMPT, params({"engine": {"max_model_len": 64}, **SHORT_GENERATION})),
         ("engine.max_model_len: 64 — a prompt has", "tokens (sample", "which leaves no room for a completion; raise it")),
    Case("replicas-above-cores", "sample@M1", chain(PROMPT, params({"engine": {"data_parallel_size": 1000}})),
         ("engine.data_parallel_size: 1000 replicas on a CPU need a core each; this machine has",)),
    # models a param names, missing
    Case("evaluator-missing-name", "evaluate@M1", chain(M1, params({"evaluate": {"evaluator": "no_such_dir", "baselines": ["previous"]}})),
         "evaluate.evaluator: 'no_such_dir' — not a model: " + NOT_A_MODEL),
    Case("evaluator-missing-path", "evaluate@M1", chain(M1, params({"evaluate": {"evaluator": "./no/such_dir", "baselines": ["previous"]}})),
         "evaluate.evaluator: './no/such_dir' — no model folder there (no/such_dir/config.json is missing)"),
    Case("baseline-not-an-iteration", "evaluate@M1", chain(M1, params({"evaluate": {"baselines": ["M7"]}})),
         "evaluate.baselines: 'M7' — not a model: " + NOT_A_MODEL),
    Case("baseline-base-missing", "evaluate@M1", chain(M1, params({"evaluate": {"baselines": ["base"]}})),
         "evaluate.baselines: 'base' is models/M0, which is missing — run `dvc repro` for M0 first"),
    Case("generator-missing-name", "self_instruct@M1", params({"self_instruct": {"generator": "no_such_dir"}}),
         "self_instruct.generator: 'no_such_dir' — not a model: " + NOT_A_MODEL),
    Case("generator-base-missing", "self_instruct@M1", params({"self_instruct": {"generator": "base"}}),
         "self_instruct.generator: 'base' is models/M0, which is missing — run `dvc repro` for M0 first"),
    # the models before any iteration, measured by evaluate
    Case("evaluate-base-missing", "evaluate@M0", params({"evaluate": {"max_prompts": 2}}),
         "models/M0: missing — run `dvc repro` for M0 first"),
    Case("evaluate-unknown-key", "evaluate@M9", params({}),
         P + "iterations: no iteration 'M9' — declared: M1"),
    # outputs that could not be written: found before the work, and nothing lands alone
    Case("metrics-folder-is-a-file", "sample@M1", chain(PROMPT, write("metrics/M1", "in the way")),
         ("metrics/M1: cannot write there — a file is in the way of the folder", "nothing was done")),
    Case("metrics-root-is-a-file", "judge@M1", chain(PROMPT, write("metrics", "in the way")),
         ("metrics/M1: cannot write there — a file is in the way of the folder",)),
    Case("data-folder-blocked-for-evaluate", "evaluate@M0_sft", chain(M0, write("data/M0_sft", "in the way")),
         ("data/M0_sft: cannot write there — a file is in the way of the folder",)),
]
