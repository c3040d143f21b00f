"""`make bench` / `python -m benchmarks [NAME ...]`: run every benchmarks/bench_*.py (or the named ones; those in
ONLY_BY_NAME run only when named).

Options after a single name go to that benchmark (`python -m benchmarks peers --device cuda --precision bf16`).
Benchmarks print speed and memory figures; they never assert timings (tests do not time anything).
"""

import importlib
import sys
from pathlib import Path

import torch

ONLY_BY_NAME = {"convergence"}  # hours of training runs: `make bench` without names leaves them out


def main(argv: list[str]) -> None:
    available = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    first_option = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:first_option], argv[first_option:]
    unknown = sorted(set(names) - set(available))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {available}")
    if options and len(names) != 1:
        sys.exit(f"options {options} need exactly one benchmark name before them, e.g. `peers {' '.join(options)}`")
    for name in names or [n for n in available if n not in ONLY_BY_NAME]:
        print(f"\n=== benchmark: {name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        threads = torch.get_num_threads()
        try:
            module.main(options) if options else module.main()
        finally:
            # `--threads` is the benchmark's own: a caller in the same process (the smoke tests) keeps its count,
            # which bit-exact comparisons between processes rely on (CPU reductions depend on it).
            torch.set_num_threads(threads)


if __name__ == "__main__":
    main(sys.argv[1:])
