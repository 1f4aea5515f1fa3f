"""A corpus of bad inputs a new user might give, one table row each: params.yaml, data files, model sources,
evaluator settings and stage order. Every row must stop its stage with exit code 2 and ONE line
``error: <file:line or params key>: <what is wrong>`` as stderr's last line, no traceback, and nothing written
or changed outside ``.work/``.

A row that the pipeline does not yet handle stays in the table, marked ``xfail(strict=True, reason="BUG: ...")``
with what it does instead: fix the pipeline, then drop the mark.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import (
    corpus_cli,
    corpus_constraints,
    corpus_data,
    corpus_instruct,
    corpus_judges,
    corpus_stages,
    corpus_verify,
)
from tests.corpus_kit import (
    EFT,
    EVAL,
    GOOD,
    JUDGMENTS,
    LIMIT,
    MISSING_PREV,
    PAIRS,
    PROMPTS,
    READER,
    RESPONSES,
    SEED,
    UNSET_KEY,
    Case,
    P,
    chain,
    good,
    jsonl,
    line2,
    openai_evaluator,
    openai_generator,
    params,
    params_text,
    remove,
    run,
    server_url,
    snapshot,
    source,
    tiny_model_at,
    truncate,
    write,
)

PARAMS_CASES = [
    # wrong types
    Case("n-a-word", "sample@M1", params({"sample": {"n": "four"}}), P + "sample.n: 'four' — must be an integer"),
    Case("n-a-fraction", "sample@M1", params({"sample": {"n": 2.5}}), P + "sample.n: 2.5 — must be an integer"),
    Case("n-null", "sample@M1", params({"sample": {"n": None}}), P + "sample.n: None — must be an integer"),
    Case("batch-size-a-bool", "sample@M1", params({"engine": {"batch_size": True}}),
         P + "engine.batch_size: True — must be an integer"),
    Case("learning-rate-a-word", "dpo@M1", params({"dpo": {"learning_rate": "fast"}}),
         P + "dpo.learning_rate: 'fast' — must be a finite number"),
    Case("section-a-scalar", "sample@M1", params({"sample": 4}), P + "sample: 4 — must be a mapping of keys to values"),
    Case("loss-type-a-string", "dpo@M1", params({"dpo": {"loss_type": "sigmoid"}}),
         (P + "dpo.loss_type: 'sigmoid' — ", "must be a list")),
    Case("lora-a-number", "dpo@M1", params({"dpo": {"lora": 16}}),
         P + "dpo.lora: 16 — must be a mapping with keys r, alpha, dropout, target_modules, base_dtype or null"),
    # out of range, non-finite
    Case("n-one", "sample@M1", params({"sample": {"n": 1}}),
         P + "sample.n: 1 — must be at least 2 to form preference pairs"),
    Case("temperature-negative", "sample@M1", params({"sample": {"temperature": -0.1}}),
         P + "sample.temperature: -0.1 — must be at least 0 (0 means greedy)"),
    Case("top-p-zero", "sample@M1", params({"sample": {"top_p": 0}}), P + "sample.top_p: 0 — must be in (0, 1]"),
    Case("length-rho-too-big", "pairs@M1", params({"pairs": {"length_rho": 0.9}}),
         P + "pairs.length_rho: 0.9 — must be between 0.0 and 0.5"),
    Case("lora-rank-zero", "dpo@M1", params({"dpo": {"lora": {"r": 0}}}), P + "dpo.lora.r: 0 — must be at least 1"),
    Case("temperature-inf", "judge@M1", params_text("judge: {temperature: .inf}\niterations: {M1: {prev: M0_sft}}\n"),
         P + "judge.temperature: inf — must be a finite number"),
    Case("beta-nan", "dpo@M1", params_text("dpo: {beta: .nan}\niterations: {M1: {prev: M0_sft}}\n"),
         P + "dpo.beta: nan — must be a finite number"),
    # unknown keys and sections
    Case("unknown-key-nn", "sample@M1", params({"sample": {"nn": 4}}), P + "sample.nn: unknown key — did you mean 'n'?"),
    Case("unknown-key-temprature", "judge@M1", params({"judge": {"temprature": 0.5}}),
         P + "judge.temprature: unknown key — did you mean 'temperature'?"),
    Case("unknown-lora-key", "dpo@M1", params({"dpo": {"lora": {"rank": 8}}}),
         P + "dpo.lora.rank: unknown key — known keys: r, alpha, dropout, target_modules, base_dtype"),
    Case("unknown-section-sampel", "sample@M1", params({"sampel": {"n": 4}}),
         P + "sampel: unknown key — did you mean 'sample'?"),
    Case("unknown-section-foo", "sample@M1", params({"foo": 1}),
         P + "foo: unknown key — known keys: data, model, engine, sft, self_instruct, sample, verify, reflect, judge, "
         "meta_judge, judge_training, known_pool, pairs, dpo, grpo, evaluate, iterations"),
    Case("dotted-key-at-top", "sample@M1", params({"sample.n": 4}), P + "sample.n: unknown key — did you mean 'sample'?"),
    # YAML itself
    Case("duplicate-key", "sample@M1", params_text("sample:\n  n: 3\n  n: 4\niterations: {M1: {prev: M0_sft}}\n"),
         "params.yaml:3: key 'n' appears twice in one mapping (first on line 2) — YAML would silently keep the last; "
         "keep one"),
    Case("duplicate-section", "sample@M1", params_text("sample: {n: 3}\nsample: {n: 4}\n"),
         "params.yaml:2: key 'sample' appears twice in one mapping (first on line 1) — YAML would silently keep the "
         "last; keep one"),
    Case("duplicate-iteration", "sample@M1", params_text("iterations:\n  M1: {prev: M0_sft}\n  M1: {prev: M0}\n"),
         ("params.yaml:3: key 'M1' appears twice in one mapping (first on line 2)",)),
    Case("yaml-unclosed-brace", "sample@M1", params_text("sample: {n: 3\n"),
         "params.yaml:2: not valid YAML — expected ',' or '}', but got '<stream end>'"),
    Case("yaml-tab-indent", "sample@M1", params_text("sample:\n\tn: 3\n"),
         "params.yaml:2: not valid YAML — found character '\\t' that cannot start any token"),
    Case("yaml-bad-indent", "sample@M1", params_text("sample:\n  n: 3\n   temperature: 0.5\n"),
         "params.yaml:3: not valid YAML — mapping values are not allowed here"),
    Case("yaml-two-documents", "sample@M1", params_text("sample: {n: 3}\n---\njudge: {k: 2}\n"),
         "params.yaml:2: not valid YAML — but found another document"),
    Case("yaml-python-tag", "sample@M1", params_text("x: !!python/object/apply:os.system [echo hi]\n"),
         ("params.yaml:1: not valid YAML — could not determine a constructor for the tag",)),
    Case("yaml-list-as-key", "sample@M1", params_text("[sample, judge]: {temperature: 0.5}\n"),
         "params.yaml:1: a key must be a plain name, not list ['sample', 'judge']"),
    Case("yaml-control-character", "sample@M1", params_text("sample: {n: 3}\n# pasted \x07 text\n"),
         "params.yaml:2: not valid YAML — the character '\\x07' is not allowed (a control character?)"),
    Case("not-utf8", "sample@M1", params_text(b"sample: {n: 3}\n# caf\xe9\n"), "params.yaml: not UTF-8 text (byte 21)"),
    Case("file-a-list", "sample@M1", params_text("- sample\n- judge\n"),
         "params.yaml: must be a mapping of sections, got list"),
    Case("file-a-word", "sample@M1", params_text("hello\n"), "params.yaml: must be a mapping of sections, got str"),
    Case("file-missing", "sample@M1", remove("params.yaml"),
         "params.yaml: not found — run from the repository root or pass --params"),
    # misspelt enum values
    Case("thoughts-genric", "sample@M1", params({"sample": {"thoughts": "genric"}}),
         P + "sample.thoughts: 'genric' — must be 'none' | 'generic' | 'specific'"),
    Case("scoring-expect", "judge@M1", params({"judge": {"scoring": "expect"}}),
         P + "judge.scoring: 'expect' — must be 'parsed' | 'expected'"),
    Case("on-unparsed-forced", "judge@M1", params({"judge": {"on_unparsed": "forced"}}),
         P + "judge.on_unparsed: 'forced' — must be 'force' | 'drop'"),
    Case("dtype-fp16", "base_model", params({"model": {"dtype": "fp16"}}),
         P + "model.dtype: 'fp16' — must be 'float32' | 'bfloat16' | 'float16'"),
    Case("loss-type-sfft", "dpo@M1", params({"dpo": {"loss_type": ["sigmoid", "sfft"]}}),
         P + "dpo.loss_type: ['sigmoid', 'sfft'] — 'sfft' is not a loss type of TRL's DPOTrainer — did you mean 'sft'?"),
    # values that depend on each other
    Case("loss-weights-length", "dpo@M1", params({"dpo": {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}}),
         P + "dpo.loss_weights: [1.0] — needs one weight per loss_type (2)"),
    Case("max-new-tokens-over-context", "sample@M1", params({"sample": {"max_new_tokens": 5000}}),
         P + "sample.max_new_tokens: 5000 — " + LIMIT),
    Case("context-under-a-default", "sample@M1", params({"engine": {"max_model_len": 128}}),
         P + "evaluate.max_new_tokens: 256 — must be below engine.max_model_len (128), which must also hold the prompt"),
    Case("generated-examples-over-examples", "self_instruct@M1", params({"self_instruct": {"num_generated_examples": 9}}),
         P + "self_instruct.num_generated_examples: 9 — at most num_examples (8)"),
    Case("evaluator-openai-without-url", "evaluate@M1", params({"evaluate": {"evaluator": "openai"}}),
         P + "evaluate.evaluator: 'openai' — needs evaluate.openai_url and evaluate.openai_model"),
    Case("generator-openai-without-url", "self_instruct@M1", params({"self_instruct": {"generator": "openai"}}),
         P + "self_instruct.generator: 'openai' — needs self_instruct.openai_url and self_instruct.openai_model"),
    Case("url-without-scheme", "evaluate@M1", params({"evaluate": {"openai_url": "localhost:8000/v1"}}),
         P + "evaluate.openai_url: 'localhost:8000/v1' — must be an http(s) URL with a host, e.g. "
         "http://127.0.0.1:8000/v1"),
    Case("source-empty", "base_model", params({"model": {"source": ""}}),
         P + "model.source: '' — must name an embedded model, a model directory or a hub id"),
    Case("source-blank", "base_model", params({"model": {"source": "  "}}),
         P + "model.source: '  ' — must name an embedded model, a model directory or a hub id"),
    # iterations
    Case("iteration-without-prev", "sample@M1", params({"iterations": {"M1": {}}}),
         P + "iterations.M1.prev: None — " + MISSING_PREV),
    Case("iteration-a-string", "sample@M1", params({"iterations": {"M1": "M0_sft"}}),
         P + "iterations.M1.prev: None — " + MISSING_PREV),
    Case("iteration-unknown-prev", "sample@M1", params({"iterations": {"M1": {"prev": "M9"}}}),
         P + "iterations.M1.prev: 'M9' — must be M0, M0_sft or another iteration's key"),
    Case("iteration-loop", "sample@M1", params({"iterations": {"M1": {"prev": "M2"}, "M2": {"prev": "M1"}}}),
         P + "iterations.M1.prev: the chain of predecessors loops back to 'M1'"),
    Case("iteration-follows-itself", "sample@M1", params({"iterations": {"M1": {"prev": "M1"}}}),
         P + "iterations.M1.prev: 'M1' — an iteration cannot follow itself"),
    Case("iteration-bad-key", "sample@M1", params({"iterations": {"M1": {"prev": "M0_sft"}, "M-2": {"prev": "M1"}}}),
         P + "iterations: 'M-2' — an iteration key must be a name like M1 (letters, digits, _), other than M0 and "
         "M0_sft"),
    Case("iterations-a-list", "sample@M1", params({"iterations": ["M1"]}),
         P + "iterations: ['M1'] — must be a mapping like {M1: {prev: M0_sft}}"),
    Case("iteration-not-declared", "sample@M2", params({}), P + "iterations: no iteration 'M2' — declared: M1"),
    Case("override-unknown-field", "pairs@M1", params({"iterations": {"M1": {"prev": "M0_sft", "lenght_rho": 0.3}}}),
         P + "iterations.M1.lenght_rho: unknown key — did you mean 'length_rho'?"),
    Case("override-unknown-section", "sample@M1", params({"iterations": {"M1": {"prev": "M0_sft", "smaple.n": 3}}}),
         P + "iterations.M1.smaple.n: unknown key — did you mean 'sample'?"),
    Case("override-ambiguous", "sample@M1", params({"iterations": {"M1": {"prev": "M0_sft", "temperature": 0.5}}}),
         P + "iterations.M1.temperature: ambiguous — it is a field of several stages; write one of "
         "self_instruct.temperature, sample.temperature, reflect.temperature, judge.temperature, "
         "meta_judge.temperature, judge_training.temperature, known_pool.temperature, grpo.temperature, evaluate.temperature"),
    Case("override-bad-value", "judge@M1", params({"iterations": {"M1": {"prev": "M0_sft", "judge": {"k": 0}}}}),
         P + "iterations.M1.judge.k: 0 — must be at least 1"),
    Case("override-over-context", "sample@M1",
         params({"iterations": {"M1": {"prev": "M0_sft", "sample.max_new_tokens": 5000}}}),
         P + "iterations.M1: sample.max_new_tokens: 5000 — " + LIMIT),
    # templates
    Case("template-of-another-role", "judge@M1", params({"judge": {"template": "meta_judge.j2"}}),
         P + "judge.template: 'meta_judge.j2' — uses {{ judgment_a }}, {{ judgment_b }}, which this role does not "
         "provide (it provides instruction, response)"),
    Case("template-missing", "judge@M1", params({"judge": {"template": "missing.j2"}}),
         P + "judge.template: 'missing.j2' — no template 'missing.j2' under prompts/ or at that path"),
    Case("template-unused-variable", "sample@M1",
         chain(write("my_prompt.j2", "Answer well.\n"), params({"sample": {"template": "my_prompt.j2"}})),
         P + "sample.template: 'my_prompt.j2' — never uses {{ instruction }}, which this role needs in the prompt"),
    Case("template-syntax-error", "judge@M1",
         chain(write("my_judge.j2", "{{ instruction }}\n{{ response \n"), params({"judge": {"template": "my_judge.j2"}})),
         (P + "judge.template: 'my_judge.j2' — my_judge.j2:2: not a valid template — unexpected end of template",)),
]

LONG = "x" * 20_001
DATA_CASES = [
    # data/seed/instructions.jsonl (self_instruct reads it first)
    Case("seed-invalid-json", READER[SEED], line2(SEED, '{"id": "s2", "category": "math"'),
         f"{SEED}:2: invalid JSON — Expecting ',' delimiter (column 32)"),
    Case("seed-single-quotes", READER[SEED], line2(SEED, "{'id': 's2', 'instruction': 'Hi.'}"),
         f"{SEED}:2: invalid JSON — Expecting property name enclosed in double quotes (column 2)"),
    Case("seed-utf8-bom", READER[SEED], jsonl(SEED, b"\xef\xbb\xbf" + json.dumps(GOOD[SEED]).encode()),
         (f"{SEED}:1: invalid JSON — ", "BOM")),
    Case("seed-not-utf8", READER[SEED], line2(SEED, b'{"id": "s2", "instruction": "caf\xe9"}'),
         f"{SEED}:2: not valid UTF-8 (byte 33 of the line)"),
    Case("seed-lone-surrogate", READER[SEED], line2(SEED, json.dumps(good(SEED, instruction="A\ud800B"))),
         f'{SEED}:2: field "instruction" holds text that is not valid Unicode (a lone surrogate \\ud800 at character 2)'),
    Case("seed-missing-field", READER[SEED], line2(SEED, good(SEED, instruction=None)),
         f'{SEED}:2: missing field "instruction"'),
    Case("seed-empty-field", READER[SEED], line2(SEED, good(SEED, instruction=" ")),
         f'{SEED}:2: field "instruction" is empty'),
    Case("seed-null-field", READER[SEED], line2(SEED, {**good(SEED), "reference": None}),
         f'{SEED}:2: field "reference" must be a string, got null'),
    Case("seed-list-field", READER[SEED], line2(SEED, good(SEED, instruction=["Add", "two"])),
         f'{SEED}:2: field "instruction" must be a string, got ["Add", "two"]'),
    Case("seed-id-a-number", READER[SEED], line2(SEED, {**GOOD[SEED], "id": 2}),
         f'{SEED}:2: field "id" must be a string, got 2'),
    Case("seed-typo-field", READER[SEED], line2(SEED, good(SEED, instrution="Add one and one.")),
         f'{SEED}:2: unknown field "instrution" — did you mean "instruction"?'),
    Case("seed-duplicate-json-key", READER[SEED],
         line2(SEED, '{"id": "s2", "category": "c", "instruction": "Add one.", "instruction": "Sub one.", '
                     '"reference": "r"}'),
         f'{SEED}:2: key "instruction" appears twice in one object — JSON readers keep only one of them; keep one'),
    Case("seed-duplicate-id", READER[SEED], line2(SEED, GOOD[SEED]), f'{SEED}:2: duplicate id "s1" (first on line 1)'),
    Case("seed-over-long", READER[SEED], line2(SEED, good(SEED, reference=LONG)),
         f'{SEED}:2: field "reference" is 20001 characters long — at most 20000 allowed'),
    Case("seed-array", READER[SEED], line2(SEED, '["not", "an", "object"]'), f"{SEED}:2: expected a JSON object, got list"),
    Case("seed-a-string", READER[SEED], line2(SEED, '"Add two and two."'), (f"{SEED}:2: expected a JSON object",)),
    Case("seed-empty-file", READER[SEED], jsonl(SEED), f"{SEED}: no rows"),
    Case("seed-missing-file", READER[SEED], remove(SEED), f"{SEED}: not found"),
    # data/seed/judgments.jsonl (sft)
    Case("eft-score-out-of-range", READER[EFT], line2(EFT, good(EFT, score=9)),
         f'{EFT}:2: field "score" must be between 0 and 5, got 9'),
    Case("eft-score-a-string", READER[EFT], line2(EFT, good(EFT, score="3")),
         f'{EFT}:2: field "score" must be an integer, got "3"'),
    Case("eft-score-a-fraction", READER[EFT], line2(EFT, good(EFT, score=3.5)),
         f'{EFT}:2: field "score" must be an integer, got 3.5'),
    Case("eft-score-a-bool", READER[EFT], line2(EFT, good(EFT, score=True)),
         f'{EFT}:2: field "score" must be an integer, got true'),
    Case("eft-typo-field", READER[EFT], line2(EFT, good(EFT, scroe=4)),
         f'{EFT}:2: unknown field "scroe" — did you mean "score"?'),
    Case("eft-missing-file", READER[EFT], remove(EFT), f"{EFT}: not found"),
    # data/eval/prompts.jsonl and labelled_pairs.jsonl (evaluate)
    Case("eval-missing-instruction", READER[EVAL], line2(EVAL, good(EVAL, instruction=None)),
         f'{EVAL}:2: missing field "instruction"'),
    Case("eval-empty-id", READER[EVAL], line2(EVAL, {**GOOD[EVAL], "id": ""}), f'{EVAL}:2: field "id" is empty'),
    Case("eval-duplicate-id", READER[EVAL], line2(EVAL, GOOD[EVAL]), f'{EVAL}:2: duplicate id "e1" (first on line 1)'),
    Case("eval-missing-file", READER[EVAL], remove(EVAL), f"{EVAL}: not found"),
    Case("pairs-preferred-c", READER[PAIRS], line2(PAIRS, good(PAIRS, preferred="C")),
         f"{PAIRS}:2: field \"preferred\" must be 'A' | 'B', got \"C\""),
    Case("pairs-preferred-lowercase", READER[PAIRS], line2(PAIRS, good(PAIRS, preferred="a")),
         f"{PAIRS}:2: field \"preferred\" must be 'A' | 'B', got \"a\""),
    Case("pairs-empty-response", READER[PAIRS], line2(PAIRS, good(PAIRS, response_b="")),
         f'{PAIRS}:2: field "response_b" is empty'),
    Case("pairs-typo-field", READER[PAIRS], line2(PAIRS, good(PAIRS, preferred=None, prefered="B")),
         f'{PAIRS}:2: unknown field "prefered" — did you mean "preferred"?'),
    Case("pairs-empty-file", READER[PAIRS], jsonl(PAIRS), f"{PAIRS}: no rows"),
    # data/M1/prompts.jsonl (sample)
    Case("prompts-invalid-json", READER[PROMPTS], line2(PROMPTS, '{"prompt_id": "p1", "instruction": "Cut sh'),
         (f"{PROMPTS}:2: invalid JSON — Unterminated string",)),
    Case("prompts-missing-field", READER[PROMPTS], line2(PROMPTS, good(PROMPTS, instruction=None)),
         f'{PROMPTS}:2: missing field "instruction"'),
    Case("prompts-duplicate-id", READER[PROMPTS], line2(PROMPTS, GOOD[PROMPTS]),
         f'{PROMPTS}:2: duplicate prompt_id "p0" (first on line 1)'),
    Case("prompts-over-long", READER[PROMPTS], line2(PROMPTS, good(PROMPTS, instruction=LONG)),
         f'{PROMPTS}:2: field "instruction" is 20001 characters long — at most 20000 allowed'),
    Case("prompts-empty-file", READER[PROMPTS], jsonl(PROMPTS), f"{PROMPTS}: no rows"),
    # data/M1/responses.jsonl (judge)
    Case("responses-parse-ok-a-string", READER[RESPONSES], line2(RESPONSES, good(RESPONSES, parse_ok="yes")),
         f'{RESPONSES}:2: field "parse_ok" must be true or false, got "yes"'),
    Case("responses-logprob-nan", READER[RESPONSES], line2(RESPONSES, json.dumps(good(RESPONSES, logprob=float("nan")))),
         f'{RESPONSES}:2: field "logprob" must be a finite number or null, got NaN'),
    Case("responses-unknown-field", READER[RESPONSES], line2(RESPONSES, good(RESPONSES, respones="Hi.")),
         f'{RESPONSES}:2: unknown field "respones" — did you mean "response"?'),
    Case("responses-missing-id", READER[RESPONSES], line2(RESPONSES, good(RESPONSES, response_id=None)),
         f'{RESPONSES}:2: missing field "response_id"'),
]

MODEL_CASES = [
    Case("source-missing-directory", "base_model", source("./missing_model"),
         "model.source: './missing_model' — no such directory; use an embedded model (smollm2-135m-instruct, "
         "gemma3-270m), a local model directory, or a hub id like org/name"),
    Case("source-unknown-name", "base_model", source("smollm2-135m"),
         "model.source: 'smollm2-135m' — not a known name; use an embedded model (smollm2-135m-instruct, "
         "gemma3-270m), a local model directory, or a hub id like org/name"),
    Case("source-without-config", "base_model", source("my_model", write("my_model/weights.txt", "not a model\n")),
         "model.source: 'my_model' — a directory without config.json, not a Hugging Face model directory"),
    Case("source-pickle-only", "base_model",
         source("my_model", tiny_model_at("my_model"), remove("my_model/model.safetensors"),
                write("my_model/pytorch_model.bin", b"\x80\x02}q\x00.")),
         "model.source: 'my_model' — no *.safetensors weights there (only safetensors are loaded, never pickle files)"),
    Case("source-truncated-weights", "base_model",
         source("my_model", tiny_model_at("my_model"), truncate("my_model/model.safetensors")),
         ("my_model/model.safetensors: truncated (", "bytes) — re-create it")),
    Case("source-garbage-weights", "base_model",
         source("my_model", tiny_model_at("my_model"), write("my_model/model.safetensors", b"\xff" * 64)),
         "my_model/model.safetensors: not a valid safetensors file (unreadable header) — re-create it, e.g. by running "
         "the stage that wrote it again"),
    Case("source-hub-id-offline", "base_model", source("selfreward-test/no-such-model"),
         ("model.source: 'selfreward-test/no-such-model' — could not load it as a hub id (",
          "a hub id with network access")),
    Case("m0-sft-truncated-weights", "sample@M1",
         chain(jsonl(PROMPTS, GOOD[PROMPTS]), truncate("models/M0_sft/model.safetensors")),
         ("models/M0_sft/model.safetensors: truncated (", "bytes) — re-create it")),
    Case("m0-sft-config-cut", "sample@M1", chain(jsonl(PROMPTS, GOOD[PROMPTS]), truncate("models/M0_sft/config.json", 40)),
         "models/M0_sft/config.json: not valid JSON — re-create the model, e.g. by running the stage that wrote it again"),
]

EVALUATOR_CASES = [
    Case("evaluator-key-unset", "evaluate@M1", openai_evaluator(api_key_env=UNSET_KEY),
         f"evaluate.api_key_env: the variable {UNSET_KEY} is not set — export it, or set evaluate.api_key_env: null "
         "for a server that needs no key", server=(200, b'{"data": [{"id": "judge-model"}]}')),
    Case("generator-key-unset", "self_instruct@M1", openai_generator(api_key_env=UNSET_KEY),
         f"self_instruct.api_key_env: the variable {UNSET_KEY} is not set — export it, or set "
         "self_instruct.api_key_env: null for a server that needs no key", server=(200, b'{"data": [{"id": "x"}]}')),
    Case("evaluator-port-closed", "evaluate@M1", openai_evaluator(),
         ("{url}/models: no answer after 2 attempts (last: ", "Connection refused", "is the server up?"),
         server="closed"),
    Case("evaluator-url-without-scheme", "evaluate@M1", openai_evaluator(openai_url="127.0.0.1:8000/v1"),
         P + "evaluate.openai_url: '127.0.0.1:8000/v1' — must be an http(s) URL with a host, e.g. "
         "http://127.0.0.1:8000/v1"),
    Case("generator-url-without-host", "self_instruct@M1", openai_generator(openai_url="http:///v1"),
         P + "self_instruct.openai_url: 'http:///v1' — must be an http(s) URL with a host, e.g. "
         "http://127.0.0.1:8000/v1"),
    Case("evaluator-model-not-served", "evaluate@M1", openai_evaluator(),
         "evaluate.openai_model: 'judge-model' — not served at {url} (it serves: other)",
         server=(200, b'{"data": [{"id": "other"}]}')),
    Case("evaluator-answer-not-json", "evaluate@M1", openai_evaluator(),
         "{url}/models: the answer is not JSON (b'<html><body>Welcome</body></html>') — is this an OpenAI-compatible "
         "API? (the URL usually ends in /v1)", server=(200, b"<html><body>Welcome</body></html>")),
    Case("evaluator-not-a-model-list", "evaluate@M1", openai_evaluator(),
         "{url}/models: not an OpenAI-style model list", server=(200, b'{"models": ["judge-model"]}')),
    Case("evaluator-unauthorized", "evaluate@M1", openai_evaluator(),
         ("{url}/models: HTTP 401 — ", "not retried"), server=(401, b'{"error": "bad key"}')),
]

ORDER_CASES = [  # each stage run before what it reads exists
    Case("sample-before-self-instruct", "sample@M1", params({}),
         f"{PROMPTS}: not found — run `dvc repro self_instruct@M1` (or `python -m stages.self_instruct --iteration M1`) "
         "first"),
    Case("judge-before-sample", "judge@M1", params({}),
         f"{RESPONSES}: not found — run `dvc repro sample@M1` (or `python -m stages.sample --iteration M1`) first"),
    Case("meta-judge-before-judge", "meta_judge@M1", jsonl(RESPONSES, GOOD[RESPONSES]),
         f"{JUDGMENTS}: not found — run `dvc repro judge@M1` (or `python -m stages.judge --iteration M1`) first"),
    Case("pairs-before-meta-judge", "pairs@M1", chain(jsonl(RESPONSES, GOOD[RESPONSES]), jsonl(JUDGMENTS, GOOD[JUDGMENTS])),
         "data/M1/extra_judgments.jsonl: not found — run `dvc repro meta_judge@M1` (or `python -m stages.meta_judge "
         "--iteration M1`) first"),
    Case("dpo-before-pairs", "dpo@M1", params({}),
         "data/M1/response_pairs.jsonl: not found — run `dvc repro pairs@M1` (or `python -m stages.pairs --iteration "
         "M1`) first"),
    Case("evaluate-before-dpo", "evaluate@M1", params({}), "models/M1: missing — run `dvc repro` for M1 first"),
    Case("sample-before-sft", "sample@M1", remove("models/M0_sft"), "models/M0_sft: missing — run `dvc repro` for M0_sft first"),
    Case("sft-before-base-model", "sft", params({}), "models/M0: missing — run `dvc repro` for M0 first"),
    Case("next-iteration-too-early", "sample@M2",
         params({"iterations": {"M1": {"prev": "M0_sft"}, "M2": {"prev": "M1"}}}),
         "models/M1: missing — run `dvc repro` for M1 first"),
]

CATEGORIES = {"params": PARAMS_CASES, "data": DATA_CASES, "model": MODEL_CASES, "evaluator": EVALUATOR_CASES,
              "order": ORDER_CASES, "cli": corpus_cli.CASES, "sources": corpus_data.CASES,
              "stages": corpus_stages.CASES, "verify": corpus_verify.CASES, "instruct": corpus_instruct.CASES,
              "judges": corpus_judges.CASES, "constraints": corpus_constraints.CASES}
ALL = [pytest.param(case, id=f"{cat}-{case.id}",
                    marks=[pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}")] if case.bug else [])
       for cat, cases in CATEGORIES.items() for case in cases]




@pytest.fixture()
def no_backoff(monkeypatch):
    """The openai engine retries a refused connection with exponential backoff (2 attempts in the pre-flight check): no sleeping
    here, the attempts and the message are the same."""
    from pipeline.engines.openai import OpenAIEngine

    init = OpenAIEngine.__init__

    def fast(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "sleep": lambda seconds: None})

    monkeypatch.setattr(OpenAIEngine, "__init__", fast)


def test_the_corpus_is_big_enough():
    assert len(ALL) >= 250
    assert len({p.id for p in ALL}) == len(ALL)


@pytest.mark.parametrize("case", ALL)
def test_bad_input_stops_with_one_line(tiny_workdir, monkeypatch, no_backoff, case: Case):
    monkeypatch.delenv(UNSET_KEY, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with server_url(case.server) as url:
        case.setup(tiny_workdir, {"url": url})
        before = snapshot(tiny_workdir)
        proc = run(case.stage)
        after = snapshot(tiny_workdir)
    detail = f"exit {proc.returncode}, stderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, detail
    assert proc.returncode == 2, detail
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), detail
    if isinstance(case.expect, str):
        assert last == "error: " + case.expect.replace("{url}", url), detail
    else:
        prefix, *phrases = (s.replace("{url}", url) for s in case.expect)
        assert last.startswith("error: " + prefix), detail
        for phrase in phrases:
            assert phrase in last, detail
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"written or changed outside .work/: {changed}"
