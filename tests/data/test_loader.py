"""The datamodule and its loaders: the batch contract, boxes that stay tight on their objects through
flips, crops and resizes, worker loading equal to in-process loading, and early, named errors."""

import json
import pickle
import random

import pytest
import torch

from detr_ft.data import CocoDetection, DetectionDataModule
from detr_ft.data.collate import collate
from detr_ft.data.transforms import denormalize, make_eval_transforms, make_train_transforms


@pytest.fixture
def folder(synthetic_folder):
    return synthetic_folder


def _module(folder, **kw) -> DetectionDataModule:
    args = dict(train_scales=[64, 80, 96], max_size=128, eval_scale=96, crop=True, batch_size=4, num_workers=0)
    return DetectionDataModule(
        str(folder / "train"),
        str(folder / "annotations/instances_train.json"),
        str(folder / "val"),
        str(folder / "annotations/instances_val.json"),
        **{**args, **kw},
    )


def _tight_boxes(image: torch.Tensor, target: dict, names: list[str]) -> int:
    """Asserts that each lone circle or square reaches all four sides of its box and hardly spills out
    of it (flat colours, so the box centre's colour marks the object); returns how many were checked.
    Circles cut by the image edge are skipped: a clipped box is the original box cut by the crop (as in
    DETR), which is not the tight box of a circle's visible cap."""
    pixels = denormalize(image) * 255  # [3, H, W]
    height, width = pixels.shape[-2:]
    boxes = target["boxes"] * torch.tensor([width, height, width, height])
    xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], dim=1)
    checked = 0
    for index, (x0, y0, x1, y1) in enumerate(xyxy.tolist()):
        near = [
            o
            for j, o in enumerate(xyxy.tolist())
            if j != index and not (o[2] < x0 - 4 or x1 + 4 < o[0] or o[3] < y0 - 4 or y1 + 4 < o[1])
        ]
        name = names[int(target["labels"][index])]
        at_edge = x0 < 1 or y0 < 1 or x1 > width - 1 or y1 > height - 1
        if name not in ("circle", "square") or (name == "circle" and at_edge) or near or min(x1 - x0, y1 - y0) < 8:
            continue
        colour = pixels[:, int((y0 + y1) / 2), int((x0 + x1) / 2)]
        is_object = (pixels - colour[:, None, None]).abs().amax(dim=0) <= 40
        top, left, bottom, right = round(y0), round(x0), round(y1), round(x1)
        inside = is_object[top:bottom, left:right]
        # 3 pixels: the crop branch resizes down then up, which blurs an edge over about 4 pixels
        for side in (inside[:3], inside[-3:], inside[:, :3], inside[:, -3:]):
            assert side.any(), ("object does not reach a side of its box", target["image_id"], (x0, y0, x1, y1))
        band = is_object[max(0, top - 3) : bottom + 3, max(0, left - 3) : right + 3].sum() - inside.sum()
        assert band <= 0.1 * inside.sum(), ("object spills out of its box", target["image_id"], (x0, y0, x1, y1))
        checked += 1
    return checked


@pytest.mark.parametrize("crop_probability", [0.0, 1.0])
def test_boxes_stay_tight_on_their_objects_through_flip_resize_and_crop(folder, crop_probability):
    torch.manual_seed(0)  # the flip draws from torch, the sizes and crops from python's random
    random.seed(0)
    transforms = make_train_transforms([64, 80, 96], 128, crop=True, crop_probability=crop_probability)
    dataset = CocoDetection(folder / "train", folder / "annotations/instances_train.json", transforms)
    names = dataset.category_map.names
    checked = sum(_tight_boxes(*dataset[i], names) for i in range(len(dataset)) for _ in range(2))
    assert checked >= 15


def test_a_shifted_box_is_caught_by_the_tightness_check(folder):
    """The check above must be able to fail: move every box by 5 pixels and it does."""
    dataset = CocoDetection(folder / "train", folder / "annotations/instances_train.json", make_eval_transforms(96, 96))
    failures = 0
    for index in range(len(dataset)):
        image, target = dataset[index]
        target["boxes"][:, 0] += 5 / 96
        try:
            _tight_boxes(image, target, dataset.category_map.names)
        except AssertionError:
            failures += 1
    assert failures >= 5


def test_every_loader_yields_the_batch_contract(folder):
    module = _module(folder)
    assert module.num_classes == 4 and module.class_names == ["circle", "square", "triangle", "cross"]
    module.setup("fit")
    assert module.val_dataset.coco.getImgIds() and module.val_dataset.category_map == module.category_map
    for loader in (module.train_dataloader(), module.val_dataloader()):
        images, mask, targets = next(iter(loader))
        assert images.dtype == torch.float32 and images.shape[:2] == (4, 3) and mask.dtype == torch.bool
        assert mask.shape == (4, *images.shape[-2:]) and len(targets) == 4
        for index, target in enumerate(targets):
            height, width = target["size"].tolist()
            assert not mask[index, :height, :width].any() and mask[index].sum() == mask[index].numel() - height * width
            assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (len(target["labels"]), 4)
            assert target["labels"].dtype == torch.int64 and target["image_id"].dtype == torch.int64
            assert target["image_id"].shape == () and target["orig_size"].tolist() == [96, 96]
            assert ((target["boxes"] >= 0) & (target["boxes"] <= 1)).all()


def test_images_without_objects_have_boxes_of_shape_0_by_4(folder):
    dataset = CocoDetection(folder / "train", folder / "annotations/instances_train.json", make_eval_transforms(96, 96))
    empty = [i for i, image_id in enumerate(dataset.image_ids) if not dataset.coco.imgToAnns.get(image_id)]
    assert empty, "the synthetic data should hold some empty images"
    _, target = dataset[empty[0]]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    _, _, targets = collate([dataset[empty[0]], dataset[0]])
    assert targets[0]["boxes"].shape == (0, 4)


def test_two_workers_give_the_same_batches_as_none(folder):
    in_process = list(_module(folder, num_workers=0).val_dataloader())
    module = _module(folder, num_workers=2)
    module.setup("validate")
    with_workers = list(module.val_dataloader())
    assert len(in_process) == len(with_workers) == 2
    for (a_images, a_mask, a_targets), (b_images, b_mask, b_targets) in zip(in_process, with_workers, strict=True):
        assert torch.equal(a_images, b_images) and torch.equal(a_mask, b_mask)
        for a, b in zip(a_targets, b_targets, strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_collate_packs_target_tensors_into_one_buffer_per_dtype_without_changing_them():
    targets = [
        {"boxes": torch.rand(2, 4), "labels": torch.tensor([1, 2]), "image_id": torch.tensor(7), "name": "a"},
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "image_id": torch.tensor(9),
            "name": "b",
        },
    ]
    _, _, packed = collate([(torch.zeros(3, 4, 4), t) for t in targets])
    for before, after in zip(targets, packed, strict=True):
        assert after["name"] == before["name"]
        for key in ("boxes", "labels", "image_id"):
            assert after[key].shape == before[key].shape and torch.equal(after[key], before[key])
    pointers = {packed[i][k].untyped_storage().data_ptr() for i in range(2) for k in ("labels", "image_id")}
    assert len(pointers) == 1


def test_datasets_and_transforms_pickle_for_spawned_workers(folder):
    """macOS and Windows start DataLoader workers by spawn, which pickles the dataset."""
    module = _module(folder)
    module.setup("fit")
    dataset = pickle.loads(pickle.dumps(module.datasets["train"]))
    image, target = dataset[0]
    assert image.shape[0] == 3 and target["image_id"] == module.datasets["train"].image_ids[0]


def test_category_id_labels_follow_the_file_ids(tmp_path, folder):
    """Ids 3, 5, 10, 12 in the file: contiguous labels 0-3, or label = id with 13 classes."""
    data = json.loads((folder / "annotations/instances_train.json").read_text())
    remap = {1: 3, 2: 5, 3: 10, 4: 12}
    for category in data["categories"]:
        category["id"] = remap[category["id"]]
    for annotation in data["annotations"]:
        annotation["category_id"] = remap[annotation["category_id"]]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    labels = {}
    for mode in ("contiguous", "category_id"):
        module = DetectionDataModule(
            str(folder / "train"),
            str(path),
            str(folder / "train"),
            str(path),
            label_mode=mode,
            eval_scale=96,
            batch_size=24,
        )
        module.setup("validate")
        _, _, targets = next(iter(module.val_dataloader()))
        labels[mode] = torch.cat([t["labels"] for t in targets])
        assert module.num_classes == {"contiguous": 4, "category_id": 13}[mode]
    assert set(labels["category_id"].tolist()) == {3, 5, 10, 12}
    as_ids = torch.tensor([3, 5, 10, 12])[labels["contiguous"]]
    assert torch.equal(as_ids, labels["category_id"])


def test_unknown_categories_and_split_mismatches_fail_early_naming_the_file(tmp_path, folder):
    data = json.loads((folder / "annotations/instances_train.json").read_text())
    data["annotations"][0]["category_id"] = 42
    bad = tmp_path / "unknown_category.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"(?s)unknown_category.json.*unknown category_id 42"):
        DetectionDataModule(str(folder / "train"), str(bad), str(folder / "val"), str(bad))
    data = json.loads((folder / "annotations/instances_val.json").read_text())
    data["categories"] = data["categories"][:3]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] <= 3]
    fewer = tmp_path / "three_categories.json"
    fewer.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"three_categories.json: the val split's categories \{1: 'circle', 2: 'sq"):
        DetectionDataModule(
            str(folder / "train"), str(folder / "annotations/instances_train.json"), str(folder / "val"), str(fewer)
        )
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"unknown_category.json has no \['images'.*\] list"):
        DetectionDataModule(str(folder / "train"), str(bad), str(folder / "val"), str(bad))


def test_collate_pads_to_the_largest_image_with_a_padding_mask():
    batch = [(torch.ones(3, 4, 6), {"n": 1}), (torch.ones(3, 5, 3), {"n": 2})]
    images, mask, targets = collate(batch)
    assert images.shape == (2, 3, 5, 6) and mask.shape == (2, 5, 6)
    assert not mask[0, :4, :6].any() and mask[0, 4:, :].all()
    assert not mask[1, :5, :3].any() and mask[1, :, 3:].all()
    assert images[1, :, :, 3:].abs().sum() == 0 and [t["n"] for t in targets] == [1, 2]


def test_without_train_augmentation_train_images_are_the_same_every_epoch(folder):
    """data.train_augmentation=false: train images get the eval transform (what a feature cache needs)."""
    random.seed(0)
    torch.manual_seed(0)
    augmented = _module(folder)
    assert augmented.deterministic_transform("train") is None
    assert augmented.deterministic_transform("val")["shorter_side"] == 96
    plain = _module(folder, train_augmentation=False)
    assert plain.deterministic_transform("train") == plain.deterministic_transform("val")
    dataset = plain.dataset("train")
    for index in range(4):
        first, again = dataset[index][0], dataset[index][0]
        assert torch.equal(first, again) and min(first.shape[-2:]) == 96
    changed = [not torch.equal(augmented.dataset("train")[i][0], augmented.dataset("train")[i][0]) for i in range(8)]
    assert any(changed)  # the augmented pipeline really is random (flips, scales, crops)
