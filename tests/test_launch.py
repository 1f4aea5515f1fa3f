"""Training on several processes (dpo.launch): the launcher commands, the params checks, and a real 2-process DDP
run of the dpo stage on this CPU (gloo) against one process with the same global batch."""

import json

import pytest
import yaml

from pipeline.config import ConfigError, load_params
from pipeline.launch import launch_command, trl_config_path
from tests.fakes import write_pairs
from tests.test_iteration import TINY_PARAMS, run_stage, tiny_workdir  # noqa: F401 (fixture)


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


def test_launch_params_are_checked(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"processes": 0}}}))
    with pytest.raises(ConfigError, match=r"dpo\.launch\.processes: 0 — must be at least 1"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"accelerate_config": "zero3"}}}))
    with pytest.raises(ConfigError, match=r"dpo\.launch\.accelerate_config: 'zero3' — shards the weights"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"accelerate_config": "zer02"}}}))
    with pytest.raises(ConfigError, match="neither a TRL accelerate config"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"launch": {"processes": 2, "accelerate_config": "multi_gpu"}}}))
    assert load_params(path).dpo.launch.processes == 2


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tiny_workdir):
    """torchrun, 2 gloo processes x 1 pair per step vs 1 process x 2 pairs: the same per-step losses, one model
    written (by process 0), weights equal up to the order of float sums."""
    from safetensors.torch import load_file

    write_pairs(tiny_workdir, 8)
    base = {**TINY_PARAMS, "dpo": {**TINY_PARAMS["dpo"], "batch_size": 2, "save_steps": 1000}}
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
    losses = lambda m: [h["loss"] for h in m["log"] if "loss" in h]  # noqa: E731
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
