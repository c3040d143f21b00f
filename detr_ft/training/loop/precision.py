"""`train.precision=auto`: bf16 mixed precision where the hardware computes in bf16 natively, fp32 elsewhere.

Native means the matrix units take bf16 (CPU: AMX or AVX512-BF16; CUDA: compute capability 8.0 or newer):
there bf16 autocast is several times faster per matmul (2.3 TFLOP/s against 0.35 for fp32 on this 2-core
Xeon). Without them bf16 is emulated and slower than fp32, so auto keeps fp32. Never fp16 on its own: it
needs loss scaling, which is the user's choice to make.
"""

import logging
from pathlib import Path

log = logging.getLogger(__name__)

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU's native-bf16 feature flags (Linux; empty where /proc/cpuinfo is absent, e.g. macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in CPU_BF16_FLAGS if flag in flags]


def resolve_precision(precision: str, accelerator: str) -> str:
    """`precision` as Lightning takes it; "auto" becomes "bf16-mixed" or "32" for this `accelerator`
    (cpu | gpu | cuda | auto, the trainer's setting)."""
    if str(precision) != "auto":
        return str(precision)
    import torch  # here: config/schema.py registers this resolver, and `--help` imports no torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        native = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
        reason = f"{torch.cuda.get_device_name()} " + ("computes bf16 natively" if native else "has no native bf16")
    else:
        flags = cpu_bf16_flags()
        native = bool(flags)
        reason = f"the CPU has {', '.join(flags)}" if native else "the CPU has no AMX or AVX512-BF16"
    resolved = "bf16-mixed" if native else "32"
    log.info("train.precision=auto: %s (%s)", resolved, reason)
    return resolved
