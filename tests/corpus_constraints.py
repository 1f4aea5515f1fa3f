"""Bad-input corpus rows for task files in IFEval's format (``key``, ``prompt``, ``instruction_id_list``,
``kwargs``) given as ``data.heldout_tasks`` (read by evaluate) or ``data.train_tasks`` (read by self_instruct).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all and checks the one line,
the exit code and that nothing was written. That no model was loaded is checked by making every model unloadable
first (:data:`NO_MODEL`: models/M0, M0_sft and M1, each with its weights cut in half): a stage that loaded one before
reading its task file would stop with "model.safetensors: truncated" instead of the expected line (the two control
rows show that it does, once the files are good). self_instruct runs with ``num_prompts: 2``, so that it would load
its generator. Line 1 of every file is a good row (the CSV's line 2), so each message must name the bad one. The
rows are written here, in the format's shape, not taken from IFEval.
"""

from __future__ import annotations

import json
from typing import Any

from tests.corpus_data import parquet, saved
from tests.corpus_kit import Case, Setup, chain, copy_model, jsonl, params, truncate, write

EV, SI = "evaluate@M1", "self_instruct@M1"
HELD = "data/user/ifeval.jsonl"
TRAIN = "data/user/ifeval_train.jsonl"
NO_MODEL = chain(truncate("models/M0_sft/model.safetensors"), copy_model("models/M0_sft", "models/M0"),
                 copy_model("models/M0_sft", "models/M1"))

NO_COMMA = "punctuation:no_comma"
WORDS = "length_constraints:number_words"
LOWER = "change_case:english_lowercase"
GOOD_ROW = {"key": 1, "prompt": "Describe a harbour at dawn.", "instruction_id_list": [NO_COMMA, WORDS],
            "kwargs": [{}, {"num_words": 80, "relation": "less than"}]}
IDS = 'field "instruction_id_list" (mapped to instruction_id_list)'
KW = 'field "kwargs" (mapped to kwargs)'


def bad(**change: Any) -> dict[str, Any]:
    """A second row: the good one with a new key and ``change``."""
    return {**GOOD_ROW, "key": 2, "prompt": "Describe a market at noon.", **change}


def heldout(*rows: Any, path: str = HELD, fields: dict[str, str] | None = None, files: Setup | None = None) -> Setup:
    """data.heldout_tasks: ``path`` (a JSONL of the good row, then ``rows``, unless ``files`` writes it), measured by
    evaluate on 2 tasks; no model can load."""
    source = {"path": path, **({"fields": fields} if fields else {})}
    return chain(NO_MODEL, files or jsonl(path, GOOD_ROW, *rows),
                 params({"data": {"heldout_tasks": source}, "evaluate": {"heldout_tasks": 2}}))


def train(*rows: Any, path: str = TRAIN, files: Setup | None = None) -> Setup:
    """data.train_tasks: ``path`` (the good row, then ``rows``), drawn by self_instruct, which would also generate
    instructions (so load a model) after reading it; no model can load."""
    return chain(NO_MODEL, files or jsonl(path, GOOD_ROW, *rows),
                 params({"data": {"train_tasks": {"path": path}}, "self_instruct": {"num_prompts": 2, "tasks": 2}}))


def hf(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as HF's copy holds it: every kwargs object with each argument name, null where unused."""
    names = ("num_words", "relation", "prompt_to_repeat", "keywords", "num_bullets", "end_phrase", "language")
    return {**row, "kwargs": [{**{n: None for n in names}, **k} for k in row["kwargs"]]}


def csv_row(row: dict[str, Any]) -> str:
    """A CSV line of ``row``: the lists as JSON text in quoted cells (a quote inside written "")."""
    cells = [str(row["key"]), row["prompt"], json.dumps(row["instruction_id_list"]), json.dumps(row["kwargs"])]
    return ",".join('"' + c.replace('"', '""') + '"' for c in cells)


CSV = "data/user/ifeval.csv"
CSV_HEADER = "key,prompt,instruction_id_list,kwargs\n"
H, T = f"{HELD}:2: ", f"{TRAIN}:2: "

CASES: list[Case] = [
    # controls: with good files each stage goes on to load a model, and NO_MODEL stops it there
    Case("control-good-heldout-file-reaches-the-model", EV, heldout(),
         ("models/M", "/model.safetensors: truncated (", "bytes) — re-create it")),
    Case("control-good-train-file-reaches-the-model", SI,
         chain(train(), jsonl(HELD, GOOD_ROW),
               params({"data": {"train_tasks": {"path": TRAIN}, "constraint_tasks": {"path": HELD}},
                       "self_instruct": {"num_prompts": 2, "tasks": 2}})),
         ("models/M0_sft/model.safetensors: truncated (", "bytes) — re-create it")),
    # instruction ids
    Case("unknown-instruction-id", EV, heldout(bad(instruction_id_list=["punctuation:no_comas", WORDS])),
         H + f'{IDS} item 1: unknown instruction id "punctuation:no_comas" — did you mean "{NO_COMMA}"?'),
    Case("train-unknown-instruction-id", SI, train(bad(instruction_id_list=[NO_COMMA, "number_word"])),
         T + f'{IDS} item 2: unknown instruction id "number_word" — did you mean "{WORDS}"?'),
    Case("instruction-ids-a-string", EV, heldout(bad(instruction_id_list=NO_COMMA, kwargs=[{}])),
         H + f'{IDS} must be a non-empty list of instruction ids, e.g. ["punctuation:no_comma", '
         f'"length_constraints:number_words"]; got "{NO_COMMA}"'),
    Case("instruction-ids-empty", SI, train(bad(instruction_id_list=[], kwargs=[])),
         T + f'{IDS} must be a non-empty list of instruction ids, e.g. ["punctuation:no_comma", '
         '"length_constraints:number_words"]; got []'),
    # kwargs
    Case("kwargs-wrong-type", EV, heldout(bad(kwargs=[{}, {"num_words": "eighty", "relation": "less than"}])),
         H + f"{KW} item 2 ({WORDS}): \"num_words\" must be int, got 'eighty'"),
    Case("train-kwargs-missing-argument", SI, train(bad(kwargs=[{}, {"relation": "less than"}])),
         T + f'{KW} item 2 ({WORDS}): needs "num_words"'),
    Case("kwargs-an-object", EV, heldout(bad(kwargs={"num_words": 80, "relation": "less than"})),
         H + f"{KW} must be a list of objects, one per instruction ({{}} where one takes no arguments), e.g. "
         '[{}, {"num_words": 50, "relation": "at least"}]; got {"num_words": 80, "relation": "less than"}'),
    Case("kwargs-item-a-number", SI, train(bad(kwargs=[{}, 80])),
         T + f"{KW} item 2 ({WORDS}) must be an object of its arguments ({{}} for none), got 80"),
    Case("kwargs-column-missing", EV, heldout({k: v for k, v in bad().items() if k != "kwargs"}),
         H + f'{KW} missing — name its column with fields, e.g. {{"kwargs": "<column>"}}; the row has key, prompt, '
         "instruction_id_list"),
    Case("lengths-differ", EV, heldout(bad(kwargs=[{}])),
         H + f"{KW} has 1 object for 2 instructions in instruction_id_list — give one per instruction, in the same "
         "order, {} where one takes no arguments"),
    Case("train-lengths-differ", SI, train(bad(instruction_id_list=[NO_COMMA], kwargs=[{}, {}])),
         T + f"{KW} has 2 objects for 1 instruction in instruction_id_list — give one per instruction, in the same "
         "order, {} where one takes no arguments"),
    # what no response can satisfy: fewer than 5 words and at least 50
    Case("at-most-5-and-at-least-50-words", EV,
         heldout(bad(instruction_id_list=[WORDS, WORDS], kwargs=[{"num_words": 5, "relation": "less than"},
                                                                 {"num_words": 50, "relation": "at least"}])),
         H + f"{IDS} cannot all be satisfied by one response: at least 50 words and at most 4"),
    Case("train-at-most-5-and-at-least-50-words", SI,
         train(bad(instruction_id_list=[WORDS, NO_COMMA, WORDS],
                   kwargs=[{"num_words": 50, "relation": "at least"}, {}, {"num_words": 5, "relation": "less than"}])),
         T + f"{IDS} cannot all be satisfied by one response: at least 50 words and at most 4"),
    # the prompt and the key
    Case("empty-prompt", EV, heldout(bad(prompt="   ")), H + 'field "prompt" (mapped to prompt) is empty'),
    Case("duplicate-key", SI, train(bad(key=1)), T + 'duplicate key "1" (first at line 1)'),
    Case("key-a-list", EV, heldout(bad(key=[2])), H + 'field "key" (mapped to key) must be an integer or text, got [2]'),
    Case("verifier-not-constraints", EV, heldout(bad(verifier="exact")),
         H + 'field "verifier" (mapped to verifier) is "exact", but a row with instruction_id_list is checked '
         'against its constraints — set it to "constraints" or drop the column'),
    # other formats: a CSV cell of bad JSON, HF's null-filled rows in parquet and a saved dataset, a user's columns
    Case("csv-cell-bad-json", EV,  # a list written out by Python (str(list)), not as JSON
         heldout(path=CSV, files=write(CSV, CSV_HEADER + csv_row(GOOD_ROW) + "\n" + '2,Describe a market at noon.,'
                                       '"[""punctuation:no_comma"", ""length_constraints:number_words""]",'
                                       "\"[{}, {'num_words': 80, 'relation': 'less than'}]\"\n")),
         f"{CSV}:3: {KW} is not valid JSON — Expecting property name enclosed in double quotes (character 7); "
         'write it as a JSON array, e.g. [{}, {"num_words": 50, "relation": "at least"}]'),
    Case("train-csv-lengths-differ", SI,
         train(path=CSV, files=write(CSV, CSV_HEADER + csv_row(GOOD_ROW) + "\n" + csv_row(bad(kwargs=[{}])) + "\n")),
         f"{CSV}:3: {KW} has 1 object for 2 instructions in instruction_id_list — give one per instruction, in the "
         "same order, {} where one takes no arguments"),
    Case("parquet-hf-rows-unknown-id", EV,
         heldout(path="data/user/ifeval.parquet",
                 files=parquet("data/user/ifeval.parquet",
                               [hf(GOOD_ROW), hf(bad(instruction_id_list=[NO_COMMA, "change_case:lowercase"]))])),
         f'data/user/ifeval.parquet:2: {IDS} item 2: unknown instruction id "change_case:lowercase" — did you mean '
         f'"{LOWER}"?'),
    Case("saved-dataset-hf-rows-impossible-words", SI,
         train(path="data/user/ifeval_saved",
               files=saved("data/user/ifeval_saved",
                           [hf(GOOD_ROW), hf(bad(instruction_id_list=[WORDS, WORDS],
                                                 kwargs=[{"num_words": 5, "relation": "less than"},
                                                         {"num_words": 50, "relation": "at least"}]))])),
         f"data/user/ifeval_saved:2: {IDS} cannot all be satisfied by one response: at least 50 words and at most 4"),
    Case("mapped-columns-unknown-id", EV,
         heldout(fields={"prompt": "instruction", "instruction_id_list": "checks.ids", "kwargs": "checks.args",
                         "key": "id"},
                 files=jsonl(HELD, {"id": 1, "instruction": "Say bye.", "checks": {"ids": [NO_COMMA], "args": [{}]}},
                             {"id": 2, "instruction": "Say hi.", "checks": {"ids": ["punctuation:no_coma"],
                                                                            "args": [{}]}})),
         H + f'field "checks.ids" (mapped to instruction_id_list) item 1: unknown instruction id "punctuation:no_coma" '
         f'— did you mean "{NO_COMMA}"?'),
]
