"""The data pipeline: synthetic data -> dataset -> transforms keeps boxes on objects; box arithmetic of
flips and crops; the category map; every bad-input case fails naming the file; image formats; batching."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detr_ft.data import CategoryMap, CocoDetection, DetectionDataModule
from detr_ft.data.collate import collate
from detr_ft.data.images import BadImageError, load_rgb
from detr_ft.data.synthetic import ensure_dataset
from detr_ft.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomSizeCrop,
    apply,
    denormalize,
    make_eval_transforms,
    make_train_transforms,
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return ensure_dataset(tmp_path_factory.mktemp("cache"), "v1", train_size=12, val_size=4, image_size=96, seed=3)


def _dataset(folder, transforms, split="train"):
    return CocoDetection(folder / split, folder / "annotations" / f"instances_{split}.json", transforms)


def test_generation_is_cached_and_deterministic(synthetic, tmp_path):
    again = ensure_dataset(synthetic.parents[1], "v1", train_size=12, val_size=4, image_size=96, seed=3)
    assert again == synthetic
    other = ensure_dataset(tmp_path, "v1", train_size=12, val_size=4, image_size=96, seed=3)
    assert (other / "annotations" / "instances_train.json").read_text() == (
        synthetic / "annotations" / "instances_train.json"
    ).read_text()
    v2 = json.loads((ensure_dataset(tmp_path, "v2", 4, 2, 64, 0) / "annotations" / "instances_train.json").read_text())
    assert len(v2["categories"]) > 4


@pytest.mark.parametrize("augmented", [False, True])
def test_boxes_stay_on_their_objects_through_the_transforms(synthetic, augmented):
    """Filled circles and squares are flat-coloured: inside a correct box, the pixel above the centre has
    the centre's colour, and the background just below the box does not."""
    torch.manual_seed(0)
    if augmented:
        transforms = make_train_transforms([64, 80, 112], 128, crop=False)
    else:
        transforms = make_eval_transforms(96, 96)
    dataset = _dataset(synthetic, transforms)
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


def test_category_map_both_ways_and_both_modes():
    categories = [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 12, "name": "eel"}]
    contiguous = CategoryMap.from_coco_categories(categories)
    assert contiguous.num_classes == 3 and contiguous.names == ["dog", "cat", "eel"]
    assert [contiguous.label_of(i) for i in (3, 7, 12)] == [0, 1, 2]
    assert [contiguous.category_id_of(label) for label in range(3)] == [3, 7, 12]
    by_id = CategoryMap.from_coco_categories(categories, "category_id")
    assert by_id.num_classes == 13 and by_id.label_of(12) == 12 and by_id.category_id_of(7) == 7
    assert by_id.names[3] == "dog" and by_id.names[0].startswith("unused")
    assert CategoryMap.from_dict(contiguous.to_dict()) == contiguous
    with pytest.raises(KeyError, match="category id 5"):
        contiguous.label_of(5)


def _write_coco(folder, annotations=None, categories=None, image_mode="RGB"):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.new(image_mode, (40, 30), 128).save(folder / "images" / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": annotations
        if annotations is not None
        else [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [2, 3, 10, 10], "area": 100, "iscrowd": 0}],
        "categories": categories or [{"id": 5, "name": "thing"}],
    }
    (folder / "instances.json").write_text(json.dumps(data))
    return folder / "images", folder / "instances.json"


def _module(images, annotations, **kw):
    return DetectionDataModule(
        str(images),
        str(annotations),
        str(images),
        str(annotations),
        train_scales=[32],
        max_size=64,
        eval_scale=32,
        crop=False,
        **kw,
    )


def test_missing_annotation_file_and_image_folder_are_named(tmp_path):
    images, annotations = _write_coco(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        _module(images, tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="no_images"):
        _module(tmp_path / "no_images", annotations).setup("fit")


def test_invalid_json_and_missing_bbox_are_named(tmp_path):
    images, annotations = _write_coco(tmp_path)
    annotations.write_text("{not json")
    with pytest.raises(ValueError, match="instances.json is not valid JSON"):
        _module(images, annotations)
    _write_coco(tmp_path, annotations=[{"id": 9, "image_id": 1, "category_id": 5}])
    with pytest.raises(ValueError, match="annotation id 9 .*bbox"):
        _module(images, annotations).setup("fit")


def test_num_classes_disagreeing_with_the_file_names_both_numbers(tmp_path):
    images, annotations = _write_coco(tmp_path)
    with pytest.raises(ValueError, match="num_classes=3 disagrees .* defines 1 classes"):
        _module(images, annotations, num_classes=3)


def test_corrupt_image_stops_with_its_path_unless_skipped(tmp_path):
    images, annotations = _write_coco(tmp_path)
    data = json.loads(annotations.read_text())
    data["images"].append({"id": 2, "file_name": "broken.jpg", "width": 40, "height": 30})
    annotations.write_text(json.dumps(data))
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    strict = _module(images, annotations)
    strict.setup("fit")
    with pytest.raises(BadImageError, match="broken.jpg"):
        strict.datasets["train"][1]
    lenient = _module(images, annotations, skip_bad_images=True)
    lenient.setup("fit")
    image, target = lenient.datasets["train"][1]
    assert int(target["image_id"]) == 1 and lenient.datasets["train"].skipped == 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P"])
def test_unusual_image_modes_load_as_rgb(tmp_path, mode):
    path = tmp_path / f"image_{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, (30, 20)).save(path)
    image = load_rgb(path)
    assert image.shape == (3, 20, 30) and image.dtype == torch.uint8
    if mode == "I;16":
        assert int(image[0, 0, 0]) == 40000 >> 8  # scaled, not clipped to white


def test_exif_rotated_jpeg_loads_in_displayed_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    stored = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(path, exif=exif)
    assert load_rgb(path).shape == (3, 40, 20)  # displayed: 20 wide, 40 tall


def test_collate_pads_to_the_largest_image_with_a_padding_mask():
    batch = [(torch.ones(3, 4, 6), {"n": 1}), (torch.ones(3, 5, 3), {"n": 2})]
    images, mask, targets = collate(batch)
    assert images.shape == (2, 3, 5, 6) and mask.shape == (2, 5, 6)
    assert not mask[0, :4, :6].any() and mask[0, 4:, :].all()
    assert not mask[1, :5, :3].any() and mask[1, :, 3:].all()
    assert images[1, :, :, 3:].abs().sum() == 0 and [t["n"] for t in targets] == [1, 2]


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
