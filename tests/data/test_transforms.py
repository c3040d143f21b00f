"""Box-aware transforms: boxes stay on their objects through resize, flip and crop; the arithmetic of flips,
crops and resizes; the normalised output. (That the configured augmentation runs: test_augmentation.py.)"""

import pytest
import torch

from detr_ft.data import CocoDetection
from detr_ft.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomSizeCrop,
    apply,
    denormalize,
    make_eval_transforms,
    make_train_transforms,
)


def _dataset(folder, transforms, split="train"):
    return CocoDetection(folder / split, folder / "annotations" / f"instances_{split}.json", transforms)


@pytest.mark.parametrize("augmented", [False, True])
def test_boxes_stay_on_their_objects_through_the_transforms(synthetic_folder, augmented):
    """Filled circles and squares are flat-coloured: inside a correct box, the pixel above the centre has
    the centre's colour, and the background just below the box does not."""
    torch.manual_seed(0)
    if augmented:
        transforms = make_train_transforms([64, 80, 112], 128, crop=False)
    else:
        transforms = make_eval_transforms(96, 96)
    dataset = _dataset(synthetic_folder, transforms)
    names = dataset.category_map.names
    agree = total = 0
    for index in range(len(dataset)):
        image, target = dataset[index]
        pixels = (denormalize(image) * 255).round()
        height, width = image.shape[-2:]
        for (cx, cy, w, h), label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            assert -1e-4 <= cx - w / 2 and cx + w / 2 <= 1 + 1e-4 and w > 0 and h > 0
            if names[label] not in ("circle", "square") or cy + h / 2 > 0.9:
                continue
            x, y = int(cx * width), int(cy * height)
            inside = pixels[:, int((cy - h / 8) * height), x]
            below = pixels[:, int((cy + h / 2) * height) + 3, x]
            total += 1
            same_inside = torch.allclose(pixels[:, y, x], inside, atol=25)
            agree += bool(same_inside and not torch.allclose(pixels[:, y, x], below, atol=25))
        assert target["size"].tolist() == [height, width]
    assert total >= 3 and agree / total >= 0.75, (agree, total)


def _target(boxes):
    return torch.tensor(boxes, dtype=torch.float32), torch.arange(len(boxes))


def test_the_train_transforms_flip_boxes_with_the_pixels():
    """The project's train transforms (one scale that keeps the 50 x 100 size, no crop), over seeds until
    both outcomes are seen: the box [10, 5, 30, 25] stays put or becomes [70, 5, 90, 25] (cx 0.2 -> 0.8),
    exactly, and the bright object is where its box says."""
    transforms = make_train_transforms([50], 100, crop=False)
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    image[:, 5:25, 10:30] = 255
    boxes, labels = _target([[10, 5, 30, 25]])
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        out, cxcywh, kept = apply(transforms, image, boxes, labels)
        assert out.shape == (3, 50, 100) and kept.tolist() == [0]
        flipped = bool(cxcywh[0, 0] > 0.5)
        seen.add(flipped)
        if flipped:
            assert torch.allclose(cxcywh, torch.tensor([[0.8, 0.3, 0.2, 0.4]]))
        else:
            assert torch.allclose(cxcywh, torch.tensor([[0.2, 0.3, 0.2, 0.4]]))
        rows, cols = (denormalize(out)[0] > 0.5).nonzero(as_tuple=True)
        x0, y0, x1, y1 = (70, 5, 90, 25) if flipped else (10, 5, 30, 25)
        assert (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1) == (x0, y0, x1, y1)
    assert seen == {False, True}


def test_crop_clips_boxes_and_drops_those_left_empty():
    from torchvision.transforms import v2

    from detr_ft.data.transforms import _finish

    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    boxes, labels = _target([[10, 10, 60, 60], [80, 80, 95, 95]])
    crop = RandomSizeCrop(50, 50)
    crop.make_params = lambda inputs: {"top": 0, "left": 0, "height": 50, "width": 50}
    _, cxcywh, kept = apply(v2.Compose([crop, *_finish()]), image, boxes, labels)
    assert kept.tolist() == [0]  # the second box lies outside the crop
    assert torch.allclose(cxcywh, torch.tensor([[0.6, 0.6, 0.8, 0.8]]))  # clipped to 10..50


def test_tv_tensors_boxes_follow_a_resize():
    transforms = make_eval_transforms(50, 200)
    image = torch.zeros(3, 100, 200, dtype=torch.uint8)
    out, cxcywh, _ = apply(transforms, image, torch.tensor([[20.0, 10.0, 60.0, 50.0]]), torch.tensor([0]))
    assert out.shape[-2:] == (50, 100)
    assert torch.allclose(cxcywh, torch.tensor([[0.2, 0.3, 0.2, 0.4]]))
    # a plain normalised float tensor (not a tv_tensors.Image): black is -mean / std in every channel
    assert type(out) is torch.Tensor and out.dtype == torch.float32
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out, black[:, None, None].expand_as(out), atol=1e-6)
