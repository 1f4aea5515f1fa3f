"""Training on several processes (dpo.launch): the launcher commands, the params checks, and a real 2-process DDP
run of the dpo stage on this CPU (gloo) against one process with the same global batch."""

import json

import pytest
import yaml

from pipeline.config import ConfigError, load_params
from pipeline.launch import launch_command, trl_config_path
from tests.fakes import write_pairs
from tests.helpers import TINY_PARAMS, run_stage


def spec(**over):
    from pipeline.config import LaunchSpec
    return LaunchSpec(**over)


def test_torchrun_command_by_default():
    cmd = launch_command(spec(processes=4, machines=2, machine_rank=1, main_process_ip="10.0.0.1"),
                         "stages.dpo", ["--iteration", "M2"], python="py")
    assert cmd == ["py", "-m", "torch.distributed.run", "--nproc_per_node", "4", "--nnodes", "2", "--node_rank", "1",
                   "--master_addr", "10.0.0.1", "--master_port", "29500", "-m", "stages.dpo", "--iteration", "M2"]


def test_accelerate_command_with_a_trl_config():
    cmd = launch_command(spec(processes=8, machines=2, accelerate_config="zero2"), "stages.dpo", ["--iteration", "M1"],
                         python="py")
    path = trl_config_path("zero2")
    assert path.is_file() and path.parent.name == "accelerate_configs"  # shipped with TRL
    assert cmd == ["py", "-m", "accelerate.commands.launch", "--config_file", str(path), "--num_processes", "16",
                   "--num_machines", "2", "--machine_rank", "0", "--main_process_ip", "127.0.0.1",
                   "--main_process_port", "29500", "-m", "stages.dpo", "--iteration", "M1"]


def test_sharded_configs_are_recognised_and_checked_before_training(tmp_path, monkeypatch):
    """ZeRO-3 and FSDP shard the weights (the saved model is gathered first); what would fail only after training
    is refused when params load: a ZeRO-3 file that cannot gather 16-bit weights, LoRA over sharded weights, and
    DeepSpeed configs where DeepSpeed is not installed."""
    import importlib.util
    import json

    from pipeline.launch import accelerate_settings, config_problem, shards_weights, wanted

    assert [shards_weights(accelerate_settings(n)) for n in ("multi_gpu", "zero1", "zero2", "zero3", "fsdp1", "fsdp2")
            ] == [False, False, False, True, True, True]
    assert config_problem("fsdp2") is None and config_problem("multi_gpu") is None
    assert "merging a LoRA adapter" in config_problem("fsdp1", lora=True)
    assert config_problem("zero2", lora=True) in (None, config_problem("zero2"))
    # ZeRO-3 from a user's file, with the DeepSpeed settings in a JSON it points to
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    (tmp_path / "z3.yaml").write_text(yaml.safe_dump({"distributed_type": "DEEPSPEED",
                                                      "deepspeed_config": {"deepspeed_config_file": "ds.json"}}))
    assert shards_weights(accelerate_settings(str(tmp_path / "z3.yaml")))
    assert "zero3_save_16bit_model" in config_problem(str(tmp_path / "z3.yaml"))
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {
        "stage": 3, "stage3_gather_16bit_weights_on_model_save": True}}))
    installed = importlib.util.find_spec("deepspeed") is not None
    assert (config_problem(str(tmp_path / "z3.yaml")) is None) == installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else True)
    assert "pip install deepspeed" in config_problem("zero3")
    (tmp_path / "bad.yaml").write_text("distributed_type: [")
    assert config_problem(str(tmp_path / "bad.yaml")).startswith("cannot read it as an accelerate config")
    # params: the same checks, before any model loads; one process with a config still launches (FSDP offload)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"accelerate_config": "zero3"}}}))
    with pytest.raises(ConfigError, match=r"dpo\.launch\.accelerate_config: 'zero3' — needs DeepSpeed"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"lora": {"r": 8}, "launch": {"accelerate_config": "fsdp2"}}}))
    with pytest.raises(ConfigError, match=r"'fsdp2' with dpo\.lora — shards the weights, and merging"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"accelerate_config": "fsdp2"}}}))
    assert wanted(load_params(path).dpo.launch)


def test_launch_params_are_checked(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"processes": 0}}}))
    with pytest.raises(ConfigError, match=r"dpo\.launch\.processes: 0 — must be at least 1"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"accelerate_config": "zer02"}}}))
    with pytest.raises(ConfigError, match="neither a TRL accelerate config"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"processes": 2, "accelerate_config": "multi_gpu"}}}))
    assert load_params(path).dpo.launch.processes == 2


def test_sft_and_dpo_hand_themselves_to_the_launcher_through_one_helper(workdir, monkeypatch):
    """With <stage>.launch asking for 2 processes, the stage runs itself again under the launcher (recorded here,
    not run) and writes nothing itself; a failure of the launched processes is one line; inside the launcher
    (LOCAL_RANK set) the stage does the work. A placeholder M0_sft: nothing loads."""
    from pipeline import launch
    from tests.inprocess import run_stage as run_here

    calls, code = [], {"exit": 0}
    monkeypatch.setattr(launch, "relaunch", lambda spec, module, args: calls.append((spec.processes, module, args))
                        or code["exit"])
    (workdir / "models/M0_sft").mkdir(parents=True)
    (workdir / "models/M0_sft/config.json").write_text("{}")
    two = {"processes": 2, "main_process_port": 29599}
    (workdir / "params.yaml").write_text(yaml.safe_dump({**TINY_PARAMS, "dpo": {**TINY_PARAMS["dpo"], "launch": two},
                                                         "sft": {"launch": two}}))
    assert run_here("dpo", "--iteration", "M1").returncode == 0
    assert run_here("sft").returncode == 0  # before it looks for models/M0: the launched processes do
    assert calls == [(2, "stages.dpo", ["--iteration", "M1"]), (2, "stages.sft", [])]
    assert not (workdir / "models/M1").exists() and not (workdir / "metrics").exists()
    code["exit"] = 3
    assert run_here("dpo", "--iteration", "M1").stderr.strip().splitlines()[-1] == \
        "error: dpo M1: the launched processes failed (exit 3); their errors are above"
    assert run_here("sft").stderr.strip().splitlines()[-1] == \
        "error: sft: the launched processes failed (exit 3); their errors are above"
    monkeypatch.setenv("LOCAL_RANK", "0")  # a launched process: on to the work (here: no pairs yet)
    last = run_here("dpo", "--iteration", "M1").stderr.strip().splitlines()[-1]
    assert last.startswith("error: data/M1/response_pairs.jsonl: not found") and len(calls) == 4


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [True, False], ids=["reference-reused", "reference-by-trl"])
def test_two_processes_train_like_one_with_the_same_global_batch(tiny_workdir, reuse):
    """torchrun, 2 gloo processes x 1 pair per step vs 1 process x 2 pairs: the same per-step losses, one model
    written (by process 0), weights equal up to the order of float sums. With the reference precomputed by TRL
    (no reuse; as with a bfloat16 trainer) every process reads the cache file process 0 wrote."""
    from safetensors.torch import load_file

    write_pairs(tiny_workdir, 8)
    base = {**TINY_PARAMS, "dpo": {**TINY_PARAMS["dpo"], "batch_size": 2, "save_steps": 1000,
                                   "reuse_generation_logprobs": reuse}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(base))
    run_stage("dpo", "--iteration", "M1")
    one = json.loads((tiny_workdir / "metrics/M1/dpo.json").read_text())
    one_weights = load_file(str(tiny_workdir / "models/M1/model.safetensors"))
    two_params = {**base, "dpo": {**base["dpo"], "batch_size": 1, "launch": {"processes": 2,
                                                                             "main_process_port": 29517}}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(two_params))
    proc = run_stage("dpo", "--iteration", "M1")
    assert proc.stderr.count("pipeline done in") == 3  # the two launched processes, then the stage that launched them
    two = json.loads((tiny_workdir / "metrics/M1/dpo.json").read_text())
    assert one["steps"] == two["steps"] == 4
    losses = lambda m: [h["loss"] for h in m["log"] if "loss" in h]
    assert losses(two) == pytest.approx(losses(one), abs=1e-5)
    two_weights = load_file(str(tiny_workdir / "models/M1/model.safetensors"))
    assert max((one_weights[k] - two_weights[k]).abs().max().item() for k in one_weights) < 1e-4


@pytest.mark.slow
def test_seed_sft_on_two_processes_matches_one(tiny_workdir):
    """The sft stage under sft.launch: process 0 checks the judge before and after and writes; the losses match
    one process with the same global batch."""
    import shutil

    shutil.copytree(tiny_workdir / "models/M0_sft", tiny_workdir / "models/M0")
    base = {**TINY_PARAMS, "sft": {"epochs": 1, "batch_size": 4, "max_examples": 8, "heldout_eft": 2,
                                   "eval_max_new_tokens": 8, "max_length": 256}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(base))
    run_stage("sft")
    one = json.loads((tiny_workdir / "metrics/M0_sft/sft.json").read_text())
    two_params = {**base, "sft": {**base["sft"], "batch_size": 2, "launch": {"processes": 2,
                                                                             "main_process_port": 29518}}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(two_params))
    proc = run_stage("sft")
    assert proc.stderr.count("pipeline done in") == 3  # the two launched processes, then the launching stage
    two = json.loads((tiny_workdir / "metrics/M0_sft/sft.json").read_text())
    assert one["steps"] == two["steps"] and one["judge_before"] == two["judge_before"]
    assert two["first_loss"] == pytest.approx(one["first_loss"], abs=1e-5)
    assert two["last_loss"] == pytest.approx(one["last_loss"], abs=1e-4)
    assert (tiny_workdir / "models/M0_sft/model.safetensors").exists()


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["fsdp2", "fsdp1", "zero3"])
def test_sharded_training_saves_the_gathered_model(tiny_workdir, config):
    """On a GPU, one process under a weight-sharding config (TRL's shipped fsdp1/fsdp2/zero3): the saved model is
    the whole model gathered from the shards — every tensor of M0 present with its shape, the weights moved by
    training, and the model loads and generates."""
    import importlib.util

    from safetensors.torch import load_file

    from pipeline.models import load_model, read_card

    if config == "zero3" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed")
    write_pairs(tiny_workdir, 8)
    params = {**TINY_PARAMS, "dpo": {**TINY_PARAMS["dpo"], "batch_size": 2, "save_steps": 1000,
                                     "launch": {"processes": 1, "accelerate_config": config,
                                                "main_process_port": 29541}}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage("dpo", "--iteration", "M1")
    before = load_file(str(tiny_workdir / "models/M0_sft/model.safetensors"))
    after = load_file(str(tiny_workdir / "models/M1/model.safetensors"))
    assert set(after) == set(before) and all(after[k].shape == before[k].shape for k in before)
    assert any((after[k].float() - before[k].float()).abs().max().item() > 0 for k in before)
    assert read_card(tiny_workdir / "models/M1")["parameters"] == sum(t.numel() for t in before.values())
    model, tok = load_model(tiny_workdir / "models/M1")
    ids = tok("Hello", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3
