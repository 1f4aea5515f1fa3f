"""Bad-input corpus rows for self-instruct (its params, seeds, template and a generator whose every output is
rejected) and for scripts/use_preset.py (unknown, empty, non-UTF-8 and invalid presets; a bad --to).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all. The self_instruct rows
with a generator that writes only rejects use the stub server as an OpenAI-compatible generator: its one answer
is both the model list and every chat completion. The use_preset rows with a broken preset put it in a presets/
folder of the work folder (`--presets presets`), never in the repository's params/.
"""

from __future__ import annotations

import json

from tests.corpus_kit import MODEL, SEED, Case, P, chain, good, jsonl, openai_generator, params, write

SI = "self_instruct@M1"
ALL_REJECTED = "self_instruct: 0 of 8 requests gave an acceptable instruction — "
CANDIDATES = ("every output and why it was rejected: .work/self_instruct-M1-", "/instruction_candidates.jsonl")
FIRST_SEED = "Write an eight-line poem about a lighthouse keeper on his last night before retirement."
FIRST_EVAL = ("Write a 120-word product description for a refillable fountain pen designed for left-handed "
              "students. Mention its quick-drying ink, and do not use the word \"perfect\".")


def answering(text: str, finish_reason: str = "stop") -> tuple[int, bytes]:
    """A stub server's answer: a model list naming MODEL, and a chat completion writing ``text``."""
    return 200, json.dumps({"data": [{"id": MODEL}], "choices": [{"message": {"content": text},
                                                                 "finish_reason": finish_reason}]}).encode()


def rejected(reason: str, advice: str) -> tuple[str, ...]:
    return (f"{ALL_REJECTED}all 8 were {reason}; {advice}; {CANDIDATES[0]}", CANDIDATES[1])


def preset(name: str, data: bytes | str):
    return write(f"presets/{name}.yaml", data)


OVER_CONTEXT = ("tokens, which with self_instruct.max_new_tokens (24) exceeds engine.max_model_len (4096) — lower "
                "self_instruct.num_examples (8), use a shorter self_instruct.template, or raise engine.max_model_len")
LONG_TEMPLATE = "Read this first. " * 2500 + "{% for e in examples %}<task>{{ e }}</task>{% endfor %}\nWrite one.\n"

PARAMS_CASES = [
    Case("min-words-above-max-words", SI, params({"self_instruct": {"min_words": 20, "max_words": 10}}),
         P + "self_instruct.min_words: 20 — above self_instruct.max_words (10): every instruction would be too short "
         "or too long"),
    Case("max-words-below-default-min-words", SI, params({"self_instruct": {"max_words": 2}}),
         P + "self_instruct.min_words: 3 — above self_instruct.max_words (2): every instruction would be too short "
         "or too long"),
    Case("min-words-above-max-new-tokens", SI, params({"self_instruct": {"min_words": 30}}),
         P + "self_instruct.min_words: 30 — above self_instruct.max_new_tokens (24): every word takes at least one "
         "token, so no instruction could be long enough"),
    Case("min-words-zero", SI, params({"self_instruct": {"min_words": 0}}),
         P + "self_instruct.min_words: 0 — must be at least 1"),
    Case("rouge-threshold-zero", SI, params({"self_instruct": {"rouge_threshold": 0.0}}),
         P + "self_instruct.rouge_threshold: 0.0 — must be in (0, 1]: every ROUGE-L is at least 0, so 0 would reject "
         "every instruction"),
    Case("rouge-threshold-above-one", SI, params({"self_instruct": {"rouge_threshold": 1.5}}),
         P + "self_instruct.rouge_threshold: 1.5 — must be in (0, 1]: every ROUGE-L is at least 0, so 0 would reject "
         "every instruction"),
    Case("rouge-threshold-a-word", SI, params({"self_instruct": {"rouge_threshold": "high"}}),
         P + "self_instruct.rouge_threshold: 'high' — must be a finite number"),
    Case("near-miss-above-rouge-threshold", SI, params({"self_instruct": {"near_miss": 0.8}}),
         P + "self_instruct.near_miss: 0.8 — must be below self_instruct.rouge_threshold (0.7): a near-miss is an "
         "accepted instruction close to that limit"),
    Case("echo-words-one", SI, params({"self_instruct": {"echo_words": 1}}),
         P + "self_instruct.echo_words: 1 — must be 0 (off) or at least 3: shorter runs such as 'of the' are in any "
         "text"),
    Case("num-examples-zero", SI, params({"self_instruct": {"num_examples": 0}}),
         P + "self_instruct.num_examples: 0 — must be at least 1"),
    Case("override-min-words-above-max-words", SI,
         params({"iterations": {"M1": {"prev": "M0_sft", "self_instruct.min_words": 200}}}),
         P + "iterations.M1: self_instruct.min_words: 200 — above self_instruct.max_words (150): every instruction "
         "would be too short or too long"),
    # the template
    Case("template-missing", SI, params({"self_instruct": {"template": "nope.j2"}}),
         P + "self_instruct.template: 'nope.j2' — no template 'nope.j2' under prompts/ or at that path"),
    Case("template-without-examples", SI,
         chain(write("my_request.j2", "Write a new task.\n"), params({"self_instruct": {"template": "my_request.j2"}})),
         P + "self_instruct.template: 'my_request.j2' — never uses {{ examples }}, which this role needs in the "
         "prompt"),
    Case("template-of-another-role", SI, params({"self_instruct": {"template": "judge.j2"}}),
         (P + "self_instruct.template: 'judge.j2' — uses {{ ", "which this role does not provide (it provides examples)")),
    Case("template-syntax-error", SI,
         chain(write("my_request.j2", "{% for e in examples %}{{ e }}\n"),
               params({"self_instruct": {"template": "my_request.j2"}})),
         (P + "self_instruct.template: 'my_request.j2' — my_request.j2:", "not a valid template")),
    # examples against the seeds and the context
    Case("num-examples-over-seeds", SI, params({"self_instruct": {"num_examples": 500}}),
         f"self_instruct.num_examples: 500 — more than the 170 seed instructions in {SEED}; show at most 170 or add "
         "seeds"),
    Case("num-examples-over-a-small-seed-file", SI,
         chain(jsonl(SEED, good(SEED, id="s1"), good(SEED, id="s2")), params({"self_instruct": {"num_examples": 3}})),
         f"self_instruct.num_examples: 3 — more than the 2 seed instructions in {SEED}; show at most 2 or add seeds"),
    Case("request-over-context", SI,
         chain(write("long_request.j2", LONG_TEMPLATE), params({"self_instruct": {"template": "long_request.j2"}})),
         ("self_instruct: the longest possible request (8 longest seeds) is ", OVER_CONTEXT)),
    # every output rejected: the dominant reason, and advice that applies to it
    Case("generator-writes-only-short-tasks", SI, openai_generator(), rejected("too_short", "lower "
         "self_instruct.min_words (3)"), server=answering("Hi there</task>")),
    Case("generator-writes-only-long-tasks", SI, openai_generator(max_words=10),
         rejected("too_long", "raise self_instruct.max_words (10)"),
         server=answering("Write a story about " + " and ".join(["a dragon"] * 8) + ".</task>")),
    Case("generator-echoes-the-request", SI, openai_generator(),
         rejected("echo_of_request", "the generator repeats the request's own words instead of writing a task: use "
                  "a stronger generator (self_instruct.generator) or a clearer self_instruct.template "
                  "(self_instruct.echo_words: 5; 0 turns this filter off)"),
         server=answering("To write a new task of your own, you can use the following steps:</task>")),
    Case("generator-copies-a-seed", SI, openai_generator(),
         rejected("similar_to_seed", "the generator copies its examples (ROUGE-L at least "
                  "self_instruct.rouge_threshold, 0.7): raise self_instruct.temperature (0.6) or use a stronger "
                  "generator"), server=answering(FIRST_SEED + "</task>")),
    Case("generator-copies-an-eval-prompt", SI, openai_generator(),
         rejected("similar_to_eval", "the tasks copy held-out evaluation prompts: make sure data.seed_instructions "
                  "and data.eval_prompts do not overlap"), server=answering(FIRST_EVAL + "</task>")),
    Case("generator-asks-for-media", SI, openai_generator(),
         rejected("not_text_only", "the tasks ask for images, files or links: check the seed instructions "
                  "(data.seed_instructions) and the generator"),
         server=answering("Describe the attached photo of a harbour in detail.</task>")),
    Case("generator-never-closes-the-task", SI, openai_generator(),
         rejected("unparseable", "the generator does not write its task between <task> and </task>: use one that "
                  "follows the request (self_instruct.generator) or a clearer self_instruct.template"),
         server=answering("Sure, here is a task for you")),
    Case("generator-cut-at-max-new-tokens", SI, openai_generator(),
         rejected("unparseable", "8 of them stopped at self_instruct.max_new_tokens (24) before </task>: raise it, "
                  "or use a generator that writes short tasks (self_instruct.generator)"),
         server=answering("Write a long and winding task about", finish_reason="length")),
]

KNOWN = "constraints, grpo, irpo, meta_rewarding, rrr, self_rewarding, self_taught, tpo"
PRESET_CASES = [
    Case("preset-unknown-name", "use_preset nope", params({}), f"no preset 'nope' — known: {KNOWN}"),
    Case("preset-misspelt-name", "use_preset ipro", params({}), f"no preset 'ipro' — did you mean 'irpo'? known: {KNOWN}"),
    Case("preset-to-missing-folder", "use_preset irpo --to missing/params.yaml", params({}),
         "--to missing/params.yaml: no folder missing — create it first, or write to another path"),
    Case("preset-to-a-folder", "use_preset irpo --to data", params({}),
         "--to data: a folder — name the file to write, e.g. data/params.yaml"),
    Case("preset-to-under-a-file", "use_preset irpo --to params.yaml/params.yaml", params({}),
         "--to params.yaml/params.yaml: params.yaml is a file, not a folder"),
    Case("preset-empty-file", "use_preset empty --presets presets", preset("empty", ""),
         "presets/empty.yaml: empty — a preset holds params.yaml sections; fill it or remove it"),
    Case("preset-blank-lines-only", "use_preset blank --presets presets", preset("blank", "\n\n  \n"),
         "presets/blank.yaml: empty — a preset holds params.yaml sections; fill it or remove it"),
    Case("preset-not-utf8", "use_preset latin --presets presets", preset("latin", b"# caf\xe9\nsample: {n: 3}\n"),
         "presets/latin.yaml: not UTF-8 text (byte 6)"),
    Case("preset-invalid-yaml", "use_preset bad --presets presets", preset("bad", "# bad\nsample: {n: 3\n"),
         "presets/bad.yaml:3: not valid YAML — expected ',' or '}', but got '<stream end>'"),
    Case("preset-invalid-value", "use_preset wrong --presets presets", preset("wrong", "# wrong\nsample: {n: 1}\n"),
         "presets/wrong.yaml: sample.n: 1 — must be at least 2 to form preference pairs"),
    Case("preset-min-words-above-max-words", "use_preset words --presets presets",
         preset("words", "self_instruct: {min_words: 9, max_words: 4}\n"),
         "presets/words.yaml: self_instruct.min_words: 9 — above self_instruct.max_words (4): every instruction "
         "would be too short or too long"),
    Case("preset-empty-file-beside-the-asked-one-broken", "use_preset bad --presets presets",
         chain(preset("empty", ""), preset("bad", "- a list\n")), "presets/bad.yaml: must be a mapping of sections, "
         "got list"),
    Case("presets-folder-missing", "use_preset irpo --presets no_presets", params({}),
         "no_presets: no such folder of presets"),
    Case("presets-folder-without-presets", "use_preset irpo --presets data/seed", params({}),
         "no preset 'irpo' — known: none in data/seed"),
]

CASES: list[Case] = PARAMS_CASES + PRESET_CASES
