"""Training on several processes, GPUs or machines with the launchers users already run: torchrun (DDP; gloo on a
CPU) or ``accelerate launch`` with one of TRL's shipped accelerate configs (multi_gpu, zero1-3, fsdp1-2) or a config
file of the user's. A stage asked for more than one process runs itself again under the launcher
(:func:`launch_command`); inside it, only the main process writes outputs (:func:`is_main`) after every process
has finished (:func:`barrier`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

TRL_CONFIGS = ("multi_gpu", "single_gpu", "zero1", "zero2", "zero3", "fsdp1", "fsdp2")


def trl_config_path(name: str) -> Path:
    """A TRL-shipped accelerate config by name (trl/accelerate_configs/<name>.yaml), or ``name`` as a path."""
    if name in TRL_CONFIGS:
        import trl

        return Path(trl.__file__).parent / "accelerate_configs" / f"{name}.yaml"
    return Path(name)


def accelerate_settings(name: str) -> dict[str, Any]:
    """An accelerate config (a TRL name or a path) as a dict, with a DeepSpeed JSON it points to read in under
    ``deepspeed_json``."""
    import json

    import yaml

    path = trl_config_path(name)
    settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(settings, dict):
        raise ValueError("not a mapping")
    ds_file = (settings.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if ds_file:
        settings["deepspeed_json"] = json.loads((path.parent / ds_file).read_text(encoding="utf-8"))
    return settings


def shards_weights(settings: dict[str, Any]) -> bool:
    """Whether processes under this accelerate config hold only a shard of the weights (ZeRO-3, FSDP)."""
    kind = str(settings.get("distributed_type", "")).upper()
    if kind == "FSDP":
        return True
    if kind == "DEEPSPEED":
        stage = (settings.get("deepspeed_config") or {}).get("zero_stage")
        stage = ((settings.get("deepspeed_json") or {}).get("zero_optimization") or {}).get("stage", stage)
        return stage == 3
    return False


def config_problem(name: str, lora: bool = False) -> str | None:
    """Why training under this accelerate config would fail only after it ran (None: it can run here)."""
    import importlib.util

    import yaml

    try:
        settings = accelerate_settings(name)
    except (OSError, ValueError, yaml.YAMLError) as e:  # json errors are ValueErrors
        return f"cannot read it as an accelerate config ({str(e).splitlines()[0]})"
    kind = str(settings.get("distributed_type", "")).upper()
    if kind == "DEEPSPEED" and shards_weights(settings):
        ds = settings.get("deepspeed_json") or {}
        gather = ((ds.get("zero_optimization") or {}).get("stage3_gather_16bit_weights_on_model_save")
                  if ds else (settings.get("deepspeed_config") or {}).get("zero3_save_16bit_model"))
        if not gather:
            return ("ZeRO-3 without zero3_save_16bit_model (stage3_gather_16bit_weights_on_model_save): the trained "
                    "weights could not be gathered into one model — set it true, as TRL's zero3 config does")
    if lora and shards_weights(settings):
        return ("shards the weights, and merging a LoRA adapter into sharded weights is not supported — LoRA fits "
                "on every GPU: use multi_gpu or zero2, or train all weights under zero3/fsdp")
    if kind == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        return "needs DeepSpeed, which is not installed — pip install deepspeed (on the GPU machines)"
    return None


def wanted(spec: Any) -> bool:
    """Whether params ask for a launcher: more than one process in all, or an accelerate config (ZeRO-3 or FSDP
    with offloading may be worth it on one GPU)."""
    return spec is not None and (spec.processes * spec.machines > 1 or spec.accelerate_config is not None)


def under_launcher() -> bool:
    """Whether this process was started by torchrun / accelerate (they set LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def is_main() -> bool:
    """The process that writes outputs: global rank 0 (or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for without torch.distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def launch_command(spec: Any, module: str, args: list[str], python: str = sys.executable) -> list[str]:
    """The command that runs ``python -m module args`` on ``spec.processes`` processes per machine."""
    if spec.accelerate_config:
        return [python, "-m", "accelerate.commands.launch", "--config_file", str(trl_config_path(spec.accelerate_config)),
                "--num_processes", str(spec.processes * spec.machines), "--num_machines", str(spec.machines),
                "--machine_rank", str(spec.machine_rank), "--main_process_ip", spec.main_process_ip,
                "--main_process_port", str(spec.main_process_port), "-m", module, *args]
    return [python, "-m", "torch.distributed.run", "--nproc_per_node", str(spec.processes),
            "--nnodes", str(spec.machines), "--node_rank", str(spec.machine_rank),
            "--master_addr", spec.main_process_ip, "--master_port", str(spec.main_process_port),
            "-m", module, *args]


def _stop_with_parent() -> None:
    """In the launcher's process, before it starts: SIGTERM it when the stage that started it dies (even by
    SIGKILL), so no training goes on behind a killed stage; the launcher then stops its workers."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


_STOP_WITH_PARENT = _stop_with_parent if sys.platform.startswith("linux") else None  # a child's preexec_fn


def relaunch(spec: Any, module: str, args: list[str]) -> int:
    """Run the stage again under the launcher and return its exit code (the children print their own errors)."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(launch_command(spec, module, args), env=env,
                          preexec_fn=_STOP_WITH_PARENT).returncode


# ------------------------------------------------------------------------------------------ engine replicas
REPLICA_ENV = "SELFREWARD_REPLICA"  # "r/n/run" in a process run_replicas started


def replica() -> tuple[int, int, str] | None:
    """(r, n, run id) in one of the n replicas of a generating stage (engine.data_parallel_size), else None."""
    value = os.environ.get(REPLICA_ENV)
    if not value:
        return None
    r, n, run = value.split("/", 2)
    return int(r), int(n), run


def writes_outputs() -> bool:
    """Whether this process writes the stage's outputs: replica 0, or the only process."""
    r = replica()
    return r is None or r[0] == 0


def visible_gpus() -> list[str]:
    """The CUDA devices this process may hand out (CUDA_VISIBLE_DEVICES, else every device torch sees)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def replica_envs(n: int, gpus_per_replica: int, run: str, gpus: list[str], cores: int) -> list[dict[str, str]]:
    """The environment of each of n replicas: its index, and its own GPUs (or, without GPUs, a share of the
    cores for its threads)."""
    if gpus and len(gpus) < n * gpus_per_replica:
        raise ValueError(f"{n} replicas x {gpus_per_replica} GPU(s) each need {n * gpus_per_replica} GPUs; "
                         f"{len(gpus)} visible")
    if not gpus and n > cores:
        raise ValueError(f"{n} replicas on a CPU need a core each; this machine has {cores} — at most {cores} here")
    envs = []
    for r in range(n):
        env = {REPLICA_ENV: f"{r}/{n}/{run}"}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[r * gpus_per_replica:(r + 1) * gpus_per_replica])
        else:
            env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(max(1, cores // n)))
        envs.append(env)
    return envs


def run_replicas(n: int, gpus_per_replica: int, module: str, args: list[str]) -> int:
    """Run ``python -m module args`` n times at once, each a replica with its own GPUs, and return 0 when all
    succeed; the first failure stops the others and its exit code is returned. The replicas stop too when this
    process dies (PR_SET_PDEATHSIG)."""
    import subprocess
    import time
    import uuid

    envs = replica_envs(n, gpus_per_replica, uuid.uuid4().hex[:12], visible_gpus(), os.cpu_count() or 1)
    procs = [subprocess.Popen([sys.executable, "-m", module, *args], env={**os.environ, **env},
                              preexec_fn=_STOP_WITH_PARENT)
             for env in envs]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                return failed[0]
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
