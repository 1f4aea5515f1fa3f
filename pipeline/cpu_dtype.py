"""Which dtype a model computes in: bfloat16 where the processor computes it natively, float32 elsewhere.

``auto`` (``engine.dtype``, ``sft.dtype``, ``dpo.dtype``) is bfloat16 on a CUDA GPU (as before) and on a CPU
whose flags say it has bfloat16 arithmetic: ``amx_bf16`` (Intel AMX) or ``avx512_bf16`` on x86, ``bf16`` on
arm. Everywhere else it is float32: a CPU without those instructions still computes bfloat16, but by converting
to float32 and back, which is slower than float32 itself. A user's value (float32, bfloat16, float16) always
wins, with policy ``user``.

The flags come from ``/proc/cpuinfo`` (Linux; ``flags`` on x86, ``Features`` on arm) and, where torch is
already imported, from ``torch.cpu.get_capabilities()`` (cpuinfo's CPUID reading, which also works on macOS and
Windows); a flag either source reports counts. On macOS ``auto`` stays float32 even where the chip reports
``bf16`` (Apple M2 and later): PyTorch's macOS CPU kernels were not measured to compute it faster, so bfloat16
there is a user's choice.

Every choice is a :class:`DtypeChoice` (``{dtype, policy, reason}``), logged as one line and written into the
stage metrics and model cards, so a figure can always be traced to the precision that made it. Nothing here
imports torch at module level; :func:`decide` is pure, :func:`choose` reads the machine.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("pipeline")

USER_DTYPES = ("float32", "bfloat16", "float16")
NATIVE_BF16 = {"x86": ("amx_bf16", "avx512_bf16"), "arm": ("bf16", "sve_bf16")}
# The widest vector unit of a CPU without native bfloat16, best first: what its reason names ("avx2 only").
VECTOR_UNITS = ("avx512f", "avx2", "avx", "sse4_2", "sve2", "sve", "asimd", "neon")
# torch.cpu.get_capabilities() spells a few flags differently from /proc/cpuinfo.
_TORCH_NAMES = {"avx512_f": "avx512f"}


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU says about itself: its flags, where they were read, and the architecture and system."""

    flags: frozenset[str]
    source: str  # "/proc/cpuinfo", "torch", "/proc/cpuinfo+torch" or "none"
    arch: Literal["x86", "arm", "other"]
    system: str  # platform.system(): Linux, Darwin, Windows


@dataclass(frozen=True)
class DtypeChoice:
    """A compute dtype and why: ``policy`` auto (decided here) or user (a params value)."""

    dtype: str
    policy: Literal["auto", "user"]
    reason: str

    def record(self) -> dict[str, str]:
        """The choice as written into metrics and model cards."""
        return dataclasses.asdict(self)

    def line(self, what: str) -> str:
        """One log line: ``generation dtype: float32 (auto: no native bfloat16 on this CPU (avx2 only))``."""
        return f"{what} dtype: {self.dtype} ({self.policy}: {self.reason})"


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The flags of the first processor in ``/proc/cpuinfo`` text (x86 ``flags``, arm ``Features``)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def torch_flags() -> frozenset[str]:
    """The CPU flags torch read (``torch.cpu.get_capabilities``), empty when torch is not imported or too old.

    Only a torch that is already loaded is asked: a pure caller must not pay torch's import for this.
    """
    torch = sys.modules.get("torch")
    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get is None:
        return frozenset()
    try:
        caps = dict(get())
    except (RuntimeError, AttributeError):
        return frozenset()
    return frozenset(_TORCH_NAMES.get(k, k) for k, v in caps.items() if v is True)


def architecture(machine: str) -> Literal["x86", "arm", "other"]:
    m = machine.lower()
    if m in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    return "other"


def read_features(cpuinfo: Path = Path("/proc/cpuinfo"), extra: Iterable[str] | None = None) -> CpuFeatures:
    """This machine's CPU flags, from ``cpuinfo`` and torch (``extra``: flags read elsewhere, default torch's)."""
    try:
        listed = parse_cpuinfo(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:  # not Linux, or a sandbox without /proc
        listed = frozenset()
    more = torch_flags() if extra is None else frozenset(extra)
    source = "+".join(name for name, found in (("/proc/cpuinfo", listed), ("torch", more)) if found) or "none"
    return CpuFeatures(flags=listed | more, source=source, arch=architecture(platform.machine()),
                       system=platform.system())


def native_bf16(features: CpuFeatures) -> list[str]:
    """The flags that say this CPU computes bfloat16 natively (empty: it does not, or they are unknown)."""
    return [f for f in NATIVE_BF16.get(features.arch, ()) if f in features.flags]


def _without(features: CpuFeatures) -> str:
    if not features.flags:
        return "no native bfloat16 found (the CPU flags could not be read)"
    best = next((u for u in VECTOR_UNITS if u in features.flags), None)
    return f"no native bfloat16 on this CPU ({best} only)" if best else "no native bfloat16 on this CPU"


def decide(requested: str, features: CpuFeatures, cuda: bool = False, cuda_bf16: bool = True) -> DtypeChoice:
    """The compute dtype for ``requested`` (auto or a dtype) on a machine with ``features`` (pure).

    ``cuda``: the model runs on a CUDA GPU; ``cuda_bf16``: that GPU computes bfloat16 (the trainers ask
    ``torch.cuda.is_bf16_supported()``; generation has always used bfloat16 on a GPU).
    """
    if requested != "auto":
        if requested not in USER_DTYPES:
            from pipeline.errors import ConfigError

            raise ConfigError(f"dtype: {requested!r} — must be auto or one of {', '.join(USER_DTYPES)}")
        return DtypeChoice(requested, "user", "set in params")
    if cuda:
        return DtypeChoice("bfloat16", "auto", "cuda") if cuda_bf16 else DtypeChoice(
            "float32", "auto", "cuda without bfloat16")
    found = native_bf16(features)
    if found and features.system == "Darwin":
        return DtypeChoice("float32", "auto", f"macOS: cpu flags {', '.join(found)}, but bfloat16 is not chosen "
                                              "automatically there (unmeasured); set it to use it")
    if found:
        return DtypeChoice("bfloat16", "auto", f"cpu flags: {', '.join(found)}")
    return DtypeChoice("float32", "auto", _without(features))


def choose(requested: str, what: str, cuda: bool | None = None, cuda_bf16: bool | None = None,
           features: CpuFeatures | None = None) -> DtypeChoice:
    """:func:`decide` on this machine, logged as one line (``what``: generation, sft, dpo).

    ``cuda`` None: whether torch sees a CUDA GPU (torch is imported only for that, and only when ``requested``
    is auto); ``cuda_bf16`` None: ``torch.cuda.is_bf16_supported()`` (the trainers); generation passes True.
    """
    if requested != "auto":
        choice = decide(requested, features or CpuFeatures(frozenset(), "none", "other", ""))
    else:
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        if cuda and cuda_bf16 is None:
            import torch

            cuda_bf16 = bool(torch.cuda.is_bf16_supported())
        choice = decide(requested, features or read_features(), cuda=cuda,
                        cuda_bf16=True if cuda_bf16 is None else cuda_bf16)
    log.info("%s", choice.line(what))
    return choice
