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


def wanted(spec: Any) -> bool:
    """Whether params ask for more than one process in all."""
    return spec is not None and spec.processes * spec.machines > 1


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


def relaunch(spec: Any, module: str, args: list[str]) -> int:
    """Run the stage again under the launcher and return its exit code (the children print their own errors)."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(launch_command(spec, module, args), env=env,
                          preexec_fn=_stop_with_parent if sys.platform.startswith("linux") else None).returncode
