"""Frozen vs full backbone: seconds per training step and peak memory, on the CPU.

Each case runs in its own process so its peak resident memory (ru_maxrss) is its own. Cases:
detr_r50 at batch 2 (512 px) and detr_tiny at batch 8 (256 px), random weights and random targets.

    python -m benchmarks strategies
"""

import json
import resource
import subprocess
import sys
import time

CASES = [("detr_r50", 2, 512), ("detr_tiny", 8, 256)]
STEPS, WARMUP = 5, 2


def run_case(model_name: str, batch: int, size: int, frozen: bool) -> dict:
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from detr_ft.config.schema import config_dir

    torch.manual_seed(0)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model_name}", "model.backbone.weights=null"])
    model = instantiate(cfg.model, num_classes=10)
    criterion = instantiate(cfg.criterion, num_classes=10)
    if frozen:
        model.freeze_backbone()
    else:
        model.unfreeze_backbone()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    images = torch.randn(batch, 3, size, size)
    targets = [
        {
            "labels": torch.randint(0, 10, (3,)),
            "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.5, 0.3, 0.4], [0.5, 0.7, 0.4, 0.2]]),
        }
        for _ in range(batch)
    ]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    timings = []
    for step in range(WARMUP + STEPS):
        start = time.perf_counter()
        losses = criterion(model(images), targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        if step >= WARMUP:
            timings.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "s_per_step": sorted(timings)[len(timings) // 2],
        "peak_rss_mb": peak / 1024,
        "step_growth_mb": (peak - rss_before) / 1024,
    }


def main() -> None:
    print(f"{'model':10} {'batch':>5} {'px':>4} {'strategy':8} {'s/step':>8} {'peak MB':>8} {'+MB in steps':>12}")
    for model_name, batch, size in CASES:
        results = {}
        for frozen in (True, False):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_strategies", model_name, str(batch), str(size), str(frozen)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[frozen] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[frozen]
            print(
                f"{model_name:10} {batch:5} {size:4} {'frozen' if frozen else 'full':8} {r['s_per_step']:8.3f} "
                f"{r['peak_rss_mb']:8.0f} {r['step_growth_mb']:12.0f}",
                flush=True,
            )
        print(
            f"{'':10} full/frozen: time x{results[False]['s_per_step'] / results[True]['s_per_step']:.2f}, "
            f"peak memory x{results[False]['peak_rss_mb'] / results[True]['peak_rss_mb']:.2f}, "
            f"step memory x{results[False]['step_growth_mb'] / max(results[True]['step_growth_mb'], 1):.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 5:
        print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "True")))
    else:
        main()
