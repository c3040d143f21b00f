"""Operator calls per training step: how many ops the host launches, which is what bounds a GPU step whose kernels
are small (each op costs the host microseconds whatever its size).

Counted with torch.profiler on the CPU as the OUTERMOST `aten::` calls: an aten op called inside another aten op
(aten::linear -> aten::addmm) is one launch decision of the caller, not two. Each call is attributed to the phase
(`forward`, `loss`, `backward`) whose record_function range most recently began before it; a phase nested in
another (the peer computes its loss inside its forward) takes its calls out of the outer one.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager

from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

PHASES = ("forward", "loss", "backward")

Step = Callable[[Callable[[str], AbstractContextManager]], None]


def count_operator_calls(step: Step) -> dict[str, int]:
    """Runs `step(phase)` once under the profiler; `step` wraps its parts in `with phase("forward"):` etc.
    -> outermost aten calls per phase and their `total`."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step(record_function)
    events = profiler.events()
    ranges = sorted(
        (event.time_range.start, event.time_range.end, event.name) for event in events if event.name in PHASES
    )
    counts = dict.fromkeys(PHASES, 0)
    for event in events:
        if not event.name.startswith("aten::") or _inside_aten(event):
            continue
        start = event.time_range.start
        containing = [name for begin, end, name in ranges if begin <= start <= end]
        if containing:
            counts[containing[-1]] += 1  # the innermost: the latest-starting range that holds it
    counts["total"] = sum(counts[phase] for phase in PHASES)
    return counts


def _inside_aten(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False
