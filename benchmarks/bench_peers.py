"""detr_ft against its peer, Hugging Face transformers' DetrForObjectDetection, on the same weights.

Both models are the paper's R50 DETR (91 classes, 100 queries, 6+6 layers, auxiliary decoder losses). The peer
is built with random weights (nothing is downloaded), saved with save_pretrained and loaded into detr_ft's
detr_r50, and their eval outputs are checked to agree before anything is timed. Then, alternating between the
two models step by step so that machine noise hits both alike: a training step with the whole backbone
training (layer2-4) and one with it frozen (forward, each model's own loss, backward, gradient clipping at 0.1,
AdamW), the frozen step again for detr_ft with its backbone features cached (train.cache_backbone_features:
what a frozen epoch after the first costs), and inference images/s. Each figure is the median of `--steps`
timed repetitions after `--warmup`. Beside the times, the operator calls of one training step of each model
(benchmarks/operator_counts.py: outermost aten calls for forward, loss, backward) at `--count-batches` (2 and 8)
and `--count-size` px (384) with 5 boxes per image: the host's work, which bounds a GPU step of small kernels.

    python -m benchmarks peers                                  # CPU, fp32, batch 2, 512 px
    python -m benchmarks peers --device cuda --precision bf16   # on a GPU: bf16 autocast for both models
    python -m benchmarks peers --steps 3 --out outputs/peers.json

detr_ft's step is what its LightningModule does (its optimizer from DetrModule.configure_optimizers, its
criterion under the same precision rules); the peer's is the plain transformers recipe (model(..., labels=...)
returns the loss; torch.optim.AdamW with its defaults).
"""

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

NUM_CLASSES = 91  # the official/HF COCO class head
CLIP = 0.1
DEFAULT_OUT = Path("outputs/benchmarks/peers.json")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16 = autocast for both")
    parser.add_argument("--steps", type=int, default=5, help="timed repetitions per case (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions per case first")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--count-batches", type=int, nargs="*", default=[2, 8], help="batches for op counts")
    parser.add_argument("--count-size", type=int, default=384, help="image side for the op counts (384)")
    parser.add_argument("--profile", type=int, default=0, help="also print the top N ops of detr_ft's full step")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file for the figures ({DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available here")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def build_models(device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """-> (peer, ours, our criterion) holding the same weights."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from transformers import DetrConfig, DetrForObjectDetection

    from detr_ft.checkpoints.weight_loading import load_weights
    from detr_ft.config.schema import config_dir

    torch.manual_seed(0)
    # auxiliary_loss: the paper's recipe, as detr_ft trains; both models then compute the same loss terms.
    peer_config = DetrConfig(
        use_timm_backbone=True,
        backbone="resnet50",
        use_pretrained_backbone=False,
        num_labels=NUM_CLASSES,
        auxiliary_loss=True,
    )
    peer = DetrForObjectDetection(peer_config)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["model=detr_r50", "model.backbone.weights=null"])
    ours = instantiate(cfg.model, num_classes=NUM_CLASSES)
    criterion = instantiate(cfg.criterion, num_classes=NUM_CLASSES)
    with tempfile.TemporaryDirectory() as folder:
        peer.save_pretrained(folder)
        load_weights(ours, Path(folder) / "model.safetensors")
    return peer.to(device), ours.to(device), criterion.to(device)


def make_batch(batch: int, size: int, device: torch.device, boxes_per_image: int = 4):
    """Images [B, 3, S, S] with the later ones padded on the right and bottom (as a real batch of
    different sizes), our mask (True = padding) and targets in both formats."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator)
    mask = torch.zeros(batch, size, size, dtype=torch.bool)
    for index in range(1, batch):
        mask[index, size - size // 8 * index :, :] = True
        mask[index, :, size - size // 16 * index :] = True
    images[mask[:, None].expand_as(images)] = 0
    ours, peer = [], []
    for _ in range(batch):
        labels = torch.randint(0, NUM_CLASSES, (boxes_per_image,), generator=generator)
        centres = torch.rand(boxes_per_image, 2, generator=generator) * 0.5 + 0.25
        sides = torch.rand(boxes_per_image, 2, generator=generator) * 0.3 + 0.1
        boxes = torch.cat([centres, sides], dim=1)
        ours.append({"labels": labels.to(device), "boxes": boxes.to(device)})
        peer.append({"class_labels": labels.to(device), "boxes": boxes.to(device)})
    return images.to(device), mask.to(device), ours, peer


def check_agreement(peer, ours, images, mask) -> float:
    """Largest difference between the two models' eval outputs (last decoder layer: the peer runs its heads
    only there), in fp32. Raises if they disagree: then the timings would compare different computations."""
    peer.eval()
    ours.eval()
    with torch.inference_mode():
        theirs = peer(pixel_values=images, pixel_mask=(~mask).long())
        mine = ours(images, mask)
    difference = max(
        (theirs.logits - mine["pred_logits"]).abs().max().item(),
        (theirs.pred_boxes - mine["pred_boxes"]).abs().max().item(),
    )
    if difference > 1e-3:
        raise SystemExit(f"detr_ft and the peer disagree on the same weights (max |difference| {difference:.2e})")
    return difference


def set_backbone_training(peer, ours, trains: bool) -> None:
    """Frozen: no backbone parameter trains in either model. Full: layer2-4 train in both (the paper's,
    and the peer's default: it never trains the stem or layer1)."""
    for name, parameter in peer.model.backbone.named_parameters():
        parameter.requires_grad_(trains and any(f"layer{i}" in name for i in (2, 3, 4)))
    if trains:
        ours.unfreeze_backbone()
    else:
        ours.freeze_backbone()


def our_optimizer(ours, criterion) -> torch.optim.Optimizer:
    from detr_ft.training.loop.lr_schedule import LearningRateSchedule
    from detr_ft.training.loop.module import DetrModule

    module = DetrModule(ours, criterion, 1e-4, 1e-5, 1e-4, LearningRateSchedule())
    return module.configure_optimizers()


def peer_optimizer(peer) -> torch.optim.Optimizer:
    backbone = [p for n, p in peer.named_parameters() if "backbone" in n]
    head = [p for n, p in peer.named_parameters() if "backbone" not in n]
    return torch.optim.AdamW([{"params": head}, {"params": backbone, "lr": 1e-5}], lr=1e-4, weight_decay=1e-4)


def timed(function, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def alternate(cases: dict, steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Run each case's function once per round, in turn; -> median seconds per case over the timed rounds."""
    times = {name: [] for name in cases}
    for round_index in range(warmup + steps):
        for name, function in cases.items():
            seconds = timed(function, device)
            if round_index >= warmup:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peer, ours, criterion = build_models(device)
    images, mask, our_targets, peer_targets = make_batch(args.batch, args.size, device)
    difference = check_agreement(peer, ours, images, mask)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.precision == "bf16" else nullcontext
    pixel_mask = (~mask).long()

    def peer_step(optimizer):
        with autocast():
            loss = peer(pixel_values=images, pixel_mask=pixel_mask, labels=peer_targets).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(peer.parameters(), CLIP)
        optimizer.step()

    def our_step(optimizer, cached=None):
        with autocast():
            outputs = ours.forward_from_features(*cached) if cached else ours(images, mask)
            loss = criterion(outputs, our_targets)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), CLIP)
        optimizer.step()

    operator_calls = {}
    set_backbone_training(peer, ours, True)
    for batch in args.count_batches:
        operator_calls[f"batch_{batch}"] = count_step_operators(peer, ours, criterion, batch, args.count_size, autocast)
    results, step_flops = {}, {}
    if args.profile:
        set_backbone_training(peer, ours, True)
        ours.train()
        print_profile(functools.partial(our_step, our_optimizer(ours, criterion)), device, args.profile)
    for strategy, trains in (("full", True), ("frozen", False)):
        set_backbone_training(peer, ours, trains)
        peer.train()
        ours.train()
        peer_opt, our_opt = peer_optimizer(peer), our_optimizer(ours, criterion)
        cases = {"detr_ft": functools.partial(our_step, our_opt), "peer": functools.partial(peer_step, peer_opt)}
        if not trains:
            # detr_ft's train.cache_backbone_features: a frozen backbone's features computed once, reused.
            with torch.no_grad(), autocast():
                cached = ours.backbone(images, mask)
            cases["detr_ft_cached"] = functools.partial(our_step, our_opt, cached)
        step_flops[strategy] = count_flops(cases["detr_ft"])
        if not trains:
            step_flops["frozen_cached_features"] = count_flops(cases["detr_ft_cached"])
        times = alternate(cases, args.steps, args.warmup, device)
        results[f"train_step_{strategy}_s"] = {"detr_ft": times["detr_ft"], "peer": times["peer"]}
        if not trains:
            results["train_step_frozen_cached_features_s"] = {"detr_ft": times["detr_ft_cached"], "peer": times["peer"]}
    peer.eval()
    ours.eval()

    def infer(function):
        with torch.inference_mode(), autocast():
            function()

    times = alternate(
        {
            "detr_ft": lambda: infer(lambda: ours(images, mask)),
            "peer": lambda: infer(lambda: peer(pixel_values=images, pixel_mask=pixel_mask)),
        },
        args.steps,
        args.warmup,
        device,
    )
    results["inference_images_per_s"] = {name: args.batch / seconds for name, seconds in times.items()}
    peak = matmul_peak(device, torch.bfloat16 if args.precision == "bf16" else torch.float32)
    flop_rates = {
        name: {
            "gflop": flops / 1e9,
            "gflop_per_s": flops / 1e9 / results[f"train_step_{name}_s"]["detr_ft"],
            "fraction_of_matmul_peak": flops / 1e9 / results[f"train_step_{name}_s"]["detr_ft"] / peak,
        }
        for name, flops in step_flops.items()
    }
    return {
        "setup": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "precision": args.precision,
            "batch": args.batch,
            "image_size": args.size,
            "steps": args.steps,
            "warmup": args.warmup,
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "max_output_difference": difference,
        "matmul_peak_gflop_per_s": peak,
        "detr_ft_step_flop_rates": flop_rates,
        "operator_calls_per_train_step": {"image_size": args.count_size, "boxes_per_image": 5, **operator_calls},
        "results": {
            name: {**figures, "ratio_detr_ft_to_peer": figures["detr_ft"] / figures["peer"]}
            for name, figures in results.items()
        },
    }


def count_step_operators(peer, ours, criterion, batch: int, size: int, autocast) -> dict[str, dict[str, int]]:
    """Outermost aten calls of one training step (forward, loss, backward; after one uncounted step) of each
    model, per phase. The peer computes its loss inside its forward: its loss function is wrapped to mark it."""
    from torch.autograd.profiler import record_function

    from benchmarks.operator_counts import count_operator_calls

    device = next(ours.parameters()).device
    images, mask, our_targets, peer_targets = make_batch(batch, size, device, boxes_per_image=5)
    pixel_mask = (~mask).long()
    peer_loss = peer.loss_function

    def marked_peer_loss(*args, **kwargs):
        with record_function("loss"):
            return peer_loss(*args, **kwargs)

    def our_step(phase):
        with autocast():
            with phase("forward"):
                outputs = ours(images, mask)
            with phase("loss"):
                loss = criterion(outputs, our_targets)["loss"]
        with phase("backward"):
            loss.backward()

    def peer_step(phase):
        with autocast(), phase("forward"):
            loss = peer(pixel_values=images, pixel_mask=pixel_mask, labels=peer_targets).loss
        with phase("backward"):
            loss.backward()

    peer.train()
    ours.train()
    peer.loss_function = marked_peer_loss
    counts = {}
    try:
        for name, model, step in (("detr_ft", ours, our_step), ("peer", peer, peer_step)):
            step(nullcontext_factory)
            model.zero_grad(set_to_none=True)
            counts[name] = count_operator_calls(step)
            model.zero_grad(set_to_none=True)
    finally:
        del peer._loss_function
    return counts


def nullcontext_factory(name: str):
    return nullcontext()


def count_flops(step) -> float:
    """Floating-point operations of one call of `step` (torch's FLOP counter: matmuls and convolutions,
    forward and backward; the elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a large square matmul in `dtype` on `device`: the machine's practical peak."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    seconds = timed(lambda: [a @ b for _ in range(repeats)], device) / repeats
    return 2 * size**3 / seconds / 1e9


def print_profile(step, device: torch.device, top: int) -> None:
    """Where one training step's time goes: the ops with the most self time (after one warm-up step)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(profiler.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=40), flush=True)


def print_table(report: dict) -> None:
    setup = report["setup"]
    print(
        f"R50 DETR, batch {setup['batch']}, {setup['image_size']} px, {setup['precision']} on {setup['device_name']} "
        f"({setup['threads']} threads), median of {setup['steps']}; eval outputs agree within "
        f"{report['max_output_difference']:.1e}"
    )
    print(f"{'measure':36} {'detr_ft':>10} {'peer (HF)':>10} {'detr_ft/peer':>13}")
    for name, figures in report["results"].items():
        print(f"{name:36} {figures['detr_ft']:10.3f} {figures['peer']:10.3f} {figures['ratio_detr_ft_to_peer']:13.2f}")
    peak = report["matmul_peak_gflop_per_s"]
    for name, rate in report["detr_ft_step_flop_rates"].items():
        print(
            f"detr_ft {name} step: {rate['gflop']:.1f} GFLOP at {rate['gflop_per_s']:.0f} GFLOP/s, "
            f"{rate['fraction_of_matmul_peak']:.0%} of the {peak:.0f} GFLOP/s a {setup['precision']} matmul reaches"
        )
    calls = report["operator_calls_per_train_step"]
    for batch, models in calls.items():
        if not batch.startswith("batch_"):
            continue
        for name, counts in models.items():
            print(
                f"operator calls, {name}, {batch.replace('_', ' ')}, {calls['image_size']} px: {counts['total']} "
                f"(forward {counts['forward']}, loss {counts['loss']}, backward {counts['backward']})"
            )
    print(
        "train_step_frozen_cached_features_s: detr_ft with train.cache_backbone_features (a frozen backbone's "
        "features reused from an earlier epoch) against the peer's frozen step, which has no such cache"
    )


def main(argv: list[str] = ()) -> None:
    args = parse_args(list(argv))
    report = run(args)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
