"""`make bench` / `python -m benchmarks [NAME ...]`: run every benchmarks/bench_*.py (or the named ones).

Benchmarks print speed and memory figures; they never assert timings (tests do not time anything).
"""

import importlib
import sys
from pathlib import Path


def main(names: list[str]) -> None:
    available = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    unknown = sorted(set(names) - set(available))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {available}")
    for name in names or available:
        print(f"\n=== benchmark: {name} ===", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
