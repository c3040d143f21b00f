"""Box-aware transforms as the DETR paper trains: random horizontal flip, multi-scale resize of the
shorter side (longest side capped), and with probability 0.5 a resize + random-size crop first.
Validation: one fixed resize. Built on torchvision.transforms.v2, which moves boxes with the pixels.

A transform takes (image uint8 [3, H, W], target with `boxes` (tv_tensors.BoundingBoxes, XYXY pixels)
and `labels`) and returns (normalised float image, target), boxes clipped and degenerate ones dropped.
"""

import random
from contextlib import contextmanager

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from detr_ft.model.boxes import xyxy_to_cxcywh

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Normalised images [..., 3, H, W] -> floats in [0, 1] (for drawing)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


class RandomShorterSide(v2.Transform):
    """Resize so the shorter side is one of `sizes` (chosen at random), the longer at most `max_size`."""

    def __init__(self, sizes: list[int], max_size: int | None):
        super().__init__()
        self.sizes, self.max_size = list(sizes), max_size

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        short = random.choice(self.sizes)
        scale = short / min(height, width)
        if self.max_size is not None and max(height, width) * scale > self.max_size:
            scale = self.max_size / max(height, width)
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt, params):
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


class RandomSizeCrop(v2.Transform):
    """Crop a random region whose height and width are each drawn from [min_size, max_size]."""

    def __init__(self, min_size: int, max_size: int):
        super().__init__()
        self.min_size, self.max_size = min_size, max_size

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        crop_h = random.randint(min(self.min_size, height), min(self.max_size, height))
        crop_w = random.randint(min(self.min_size, width), min(self.max_size, width))
        return {
            "top": random.randint(0, height - crop_h),
            "left": random.randint(0, width - crop_w),
            "height": crop_h,
            "width": crop_w,
        }

    def transform(self, inpt, params):
        return self._call_kernel(F.crop, inpt, **params)


def _labels_of(inputs: tuple) -> torch.Tensor:
    """The labels that SanitizeBoundingBoxes drops with their boxes. A named function, not a lambda, so
    the transforms pickle into DataLoader workers started by spawn (macOS, Windows)."""
    return inputs[1]["labels"]


def _finish() -> list:
    """Clip boxes to the image, drop those left under 1 pixel wide or high, then normalise."""
    return [
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_of),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]


def make_train_transforms(
    scales: list[int], max_size: int, crop: bool = True, crop_probability: float = 0.5
) -> v2.Compose:
    """The paper's augmentation: flip, then either the multi-scale resize or (with `crop_probability`)
    resize + random-size crop + multi-scale resize. The crop stage is scaled from the largest scale as
    the paper's is for 800 (resize to 400/500/600, crop 384-600), so small images get the equivalent."""
    if not 0 <= crop_probability <= 1:
        raise ValueError(f"crop_probability must be in [0, 1], got {crop_probability}")
    resize = RandomShorterSide(scales, max_size)
    if crop:
        top = max(scales)
        before_crop = [round(top * f) for f in (0.5, 0.625, 0.75)]
        cropped = v2.Compose(
            [RandomShorterSide(before_crop, None), RandomSizeCrop(round(top * 0.48), round(top * 0.75)), resize]
        )
        resize = v2.RandomChoice([resize, cropped], p=[1 - crop_probability, crop_probability])
    return v2.Compose([v2.RandomHorizontalFlip(0.5), resize, *_finish()])


def make_eval_transforms(scale: int, max_size: int) -> v2.Compose:
    return v2.Compose([RandomShorterSide([scale], max_size), *_finish()])


# Bump when make_eval_transforms changes what it does to pixels: caches keyed by its description go stale.
EVAL_TRANSFORMS_VERSION = 1


def describe_eval_transforms(scale: int, max_size: int) -> dict:
    """Everything that decides the pixels make_eval_transforms(scale, max_size) produces (it is deterministic),
    for caches of what a model computes from them."""
    return {
        "kind": "eval",
        "version": EVAL_TRANSFORMS_VERSION,
        "shorter_side": scale,
        "max_size": max_size,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    }


@contextmanager
def seeded_randomness(seed: int | None):
    """Inside, torch's and Python's global generators start from `seed` (the v2 flip and choice draw from
    torch's, the scale and crop from Python's); both are restored after, so a draw depends on its seed alone,
    never on what ran before it in this process. `None`: the global generators as they are."""
    if seed is None:
        yield
        return
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        # The CPU generator only (the transforms draw from nothing else): torch.manual_seed would also queue a
        # reseed of every accelerator's generator, formatting a stack trace for each, a third of an image's
        # load time here, and (unlike the CPU one) not restored by fork_rng(devices=[]).
        torch.default_generator.manual_seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)


def apply(transforms, image: torch.Tensor, boxes_xyxy: torch.Tensor, labels: torch.Tensor, seed: int | None = None):
    """Run `transforms` on a uint8 image and its pixel xyxy boxes -> (image, boxes cxcywh in [0, 1], labels).
    `seed`: the draw's own seed (detr_ft.data.sampling), else the global generators."""
    height, width = image.shape[-2:]
    boxes = tv_tensors.BoundingBoxes(boxes_xyxy.reshape(-1, 4), format="XYXY", canvas_size=(height, width))
    with seeded_randomness(seed):
        image, target = transforms(tv_tensors.Image(image), {"boxes": boxes, "labels": labels})
    out_h, out_w = image.shape[-2:]
    xyxy = target["boxes"].as_subclass(torch.Tensor).reshape(-1, 4)
    scale = torch.tensor([out_w, out_h, out_w, out_h], dtype=torch.float32)
    return image.as_subclass(torch.Tensor), xyxy_to_cxcywh(xyxy / scale), target["labels"]
