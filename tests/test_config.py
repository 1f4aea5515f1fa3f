import textwrap

import pytest

from pipeline.config import ConfigError, load_params, parse_params


def load_text(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return load_params(p)


def error_of(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, text)
    return str(e.value)


def test_repository_params_load():
    params = load_params("params.yaml")
    assert params.sample.n == 4 and params.sample.thoughts == "generic"
    assert params.judge.k == 3 and params.meta_judge.num_judgments == 5
    assert params.pairs.max_judgment_chars == 1100
    assert params.iterations["M1"].prev == "M0_sft" and params.iterations["M2"].prev == "M1"


def test_defaults_follow_the_papers():
    p = parse_params({})
    assert (p.self_instruct.temperature, p.self_instruct.top_p, p.self_instruct.num_examples) == (0.6, 0.9, 8)
    assert (p.sample.temperature, p.sample.top_p) == (0.7, 0.9)
    assert p.dpo.beta == 0.1 and p.dpo.learning_rate == 1e-6 and p.dpo.reference == "previous"
    assert p.self_instruct.rouge_threshold == 0.7 and p.self_instruct.max_words == 150


def test_sample_n_below_two_names_key_value_and_reason(tmp_path):
    msg = error_of(tmp_path, "sample:\n  n: 1\n")
    assert msg.endswith("params.yaml: sample.n: 1 — must be at least 2 to form preference pairs")


def test_wrong_type_and_choice(tmp_path):
    assert "judge.k: 'three' — must be an integer" in error_of(tmp_path, "judge: {k: three}")
    msg = error_of(tmp_path, "sample: {thoughts: maybe}")
    assert "sample.thoughts: 'maybe' — must be 'none' | 'generic' | 'specific'" in msg
    assert "sample.top_p: 1.5 — must be in (0, 1]" in error_of(tmp_path, "sample: {top_p: 1.5}")


def test_unknown_key_suggests_the_near_one(tmp_path):
    assert "judge.kk: unknown key — did you mean 'k'?" in error_of(tmp_path, "judge: {kk: 3}")
    assert "smaple: unknown key — did you mean 'sample'?" in error_of(tmp_path, "smaple: {n: 3}")


def test_yaml_float_without_dot_is_accepted(tmp_path):
    assert load_text(tmp_path, "dpo: {learning_rate: 1e-6}").dpo.learning_rate == 1e-6


def test_invalid_yaml_names_the_line(tmp_path):
    msg = error_of(tmp_path, "sample:\n  n: 4\n   bad: [\n")
    assert msg.startswith(f"{tmp_path / 'params.yaml'}:") and "not valid YAML" in msg


def test_iteration_overrides_flat_dotted_and_nested(tmp_path):
    p = load_text(tmp_path, """
        pairs: {length_rho: 0.1}
        iterations:
          M1: {prev: M0_sft}
          M2: {prev: M1, judge_pairs: false, length_rho: 0.32}
          M3: {prev: M2, judge.temperature: 0.5, sample: {n: 8}}
        """)
    assert p.for_iteration("M1").pairs.length_rho == 0.1
    m2 = p.for_iteration("M2")
    assert m2.pairs.length_rho == 0.32 and m2.pairs.judge_pairs is False
    m3 = p.for_iteration("M3")
    assert m3.judge.temperature == 0.5 and m3.sample.n == 8 and m3.pairs.judge_pairs is True
    assert p.pairs.length_rho == 0.1  # the base params are untouched


def test_iteration_errors(tmp_path):
    assert "ambiguous" in error_of(tmp_path, "iterations: {M1: {prev: M0, temperature: 0.5}}")
    msg = error_of(tmp_path, "iterations: {M1: {prev: M0, n: 1}}")
    assert "iterations.M1.sample.n: 1 — must be at least 2" in msg
    assert "iterations.M2.prev: 'M7' — must be M0, M0_sft or another iteration's key" in error_of(
        tmp_path, "iterations: {M2: {prev: M7}}")
    assert "loops back" in error_of(tmp_path, "iterations: {A: {prev: B}, B: {prev: A}}")
    assert "each iteration must name its predecessor" in error_of(tmp_path, "iterations: {M1: {}}")


def test_loss_weights_must_match_loss_types(tmp_path):
    msg = error_of(tmp_path, "dpo: {loss_type: [sigmoid, sft], loss_weights: [1.0]}")
    assert "dpo.loss_weights" in msg and "one weight per loss_type (2)" in msg


def test_vllm_cpu_engine_params(tmp_path):
    assert "engine.cpu_reserved_cores: -1 — must be at least 0" in error_of(tmp_path, "engine: {cpu_reserved_cores: -1}")
    assert "engine.enforce_eager: 'yes'" in error_of(tmp_path, "engine: {enforce_eager: 'yes'}")
    path = tmp_path / "ok.yaml"
    path.write_text("engine: {enforce_eager: false, cpu_reserved_cores: 1}\ndpo: {group_by_length: true}\n")
    params = load_params(path)
    assert (params.engine.enforce_eager, params.engine.cpu_reserved_cores, params.dpo.group_by_length) == (False, 1, True)


def test_loss_types_are_the_ones_trl_computes():
    import inspect
    import re

    from trl.trainer import dpo_trainer

    from pipeline.config import TRL_LOSS_TYPES

    computed = set(re.findall(r'loss_type == "(\w+)"', inspect.getsource(dpo_trainer)))
    assert set(TRL_LOSS_TYPES) == computed


def test_a_data_role_is_a_mapping_or_a_list(tmp_path):
    p = load_text(tmp_path, """
        data:
          train_tasks:
            - {path: gsm8k.jsonl}
            - {path: mbpp.jsonl, fields: {prompt: text}}
          eval_prompts: {path: mt_bench.jsonl, fields: {instruction: "turns[0]"}}
        """)
    tasks, prompts = p.data.train_tasks, p.data.eval_prompts
    assert [(s.path, s.fields) for s in tasks] == [("gsm8k.jsonl", {}), ("mbpp.jsonl", {"prompt": "text"})]
    assert tasks.param_keys() == ["data.train_tasks[0]", "data.train_tasks[1]"] and tasks.path == "gsm8k.jsonl, mbpp.jsonl"
    assert prompts.param_keys() == ["data.eval_prompts"] and prompts[0].fields == {"instruction": "turns[0]"}
    assert p.data.seed_instructions.path == "data/seed/instructions.jsonl"  # the defaults, named by their role
    assert p.data.seed_instructions.role == "seed_instructions"


NO_PATH = "must name a file or a folder saved with datasets' save_to_disk"
SHAPE = "must be a mapping like {path: file.jsonl} (with optional fields), or a list of them"


@pytest.mark.parametrize("data, message", [
    ("train_tasks: {path: ''}", f"data.train_tasks.path: '' — {NO_PATH}"),
    ("train_tasks: [{path: a.jsonl}, {path: ' '}]", f"data.train_tasks[1].path: ' ' — {NO_PATH}"),
    ("train_tasks: []", ("data.train_tasks: [] — an empty list names no source; list at least one, e.g. [{path: "
                         "file.jsonl}]")),
    ("eval_prompts: [prompts.jsonl]", ("data.eval_prompts[0]: 'prompts.jsonl' — each item must be a mapping like "
                                       "{path: file.jsonl} (with optional fields)")),
    ("eval_prompts: prompts.jsonl", f"data.eval_prompts: 'prompts.jsonl' — {SHAPE}"),
    ("eval_prompts: null", f"data.eval_prompts: None — {SHAPE}"),
    ("train_tasks: [{path: a.jsonl}, {path: ./a.jsonl}]", ("data.train_tasks[1].path: './a.jsonl' — already "
                                                           "data.train_tasks[0]; list each file once")),
    ("train_tasks: [{path: a.jsonl, feilds: {}}]", "data.train_tasks[0].feilds: unknown key — did you mean 'fields'?"),
    ("eval_prompts: {path: a.jsonl, fields: [id]}", "data.eval_prompts.fields: ['id'] — must be a mapping"),
])
def test_data_role_errors_name_the_key(tmp_path, data, message):
    assert error_of(tmp_path, f"data:\n  {data}\n") == f"{tmp_path / 'params.yaml'}: {message}"
