"""The synthetic data generator: exact boxes, the promised variety, cache keyed by every setting, and
atomic generation (an interrupted run leaves nothing behind)."""

import json

import numpy as np
import pytest
from PIL import Image

from detr_ft.data import synthetic
from detr_ft.data.synthetic import CLASS_SETS, dataset_folder, ensure_dataset, synthetic_datamodule
from tests.conftest import SHARED_SYNTHETIC as SHARED


@pytest.fixture
def generated(synthetic_folder):
    folder = synthetic_folder
    return folder, json.loads((folder / "annotations" / "instances_train.json").read_text())


def _overlaps(a, b, margin=0) -> bool:
    return not (
        a[0] + a[2] + margin <= b[0]
        or b[0] + b[2] + margin <= a[0]
        or a[1] + a[3] + margin <= b[1]
        or b[1] + b[3] + margin <= a[1]
    )


def test_boxes_are_the_tight_boxes_of_their_objects(generated):
    """Circles and squares are flat-coloured and contain their box centre: that colour must reach all four
    sides of the box and appear nowhere just outside it (checked on objects nothing else touches)."""
    folder, data = generated
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image = {}
    for annotation in data["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation["bbox"])
    checked = 0
    for annotation in data["annotations"]:
        x, y, w, h = annotation["bbox"]
        others = [b for b in by_image[annotation["image_id"]] if b != annotation["bbox"]]
        if names[annotation["category_id"]] not in ("circle", "square") or any(
            _overlaps(annotation["bbox"], other, margin=2) for other in others
        ):
            continue
        pixels = np.asarray(Image.open(folder / "train" / f"{annotation['image_id']:06d}.png"), dtype=np.int32)
        colour = pixels[y + h // 2, x + w // 2]
        is_object = np.all(pixels == colour, axis=-1)
        inside = is_object[y : y + h, x : x + w]
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any(), annotation
        ring = is_object[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1].sum() - inside.sum()
        assert ring == 0, annotation
        checked += 1
    assert checked >= 10


def test_the_data_has_the_promised_variety(generated):
    _, data = generated
    per_image = [sum(a["image_id"] == image["id"] for a in data["annotations"]) for image in data["images"]]
    assert max(per_image) <= 5 and min(per_image) == 0 and sum(n > 1 for n in per_image) > 20
    sides = np.array([np.sqrt(a["bbox"][2] * a["bbox"][3]) / 96 for a in data["annotations"]])
    assert sides.max() <= 0.47 and np.median(sides) > 0.15  # 12-45% of the side; smaller only where cut by an edge
    assert all(
        0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w > 0 and h > 0
        for x, y, w, h in (a["bbox"] for a in data["annotations"])
    )
    assert {a["category_id"] for a in data["annotations"]} == {1, 2, 3, 4}
    assert [c["name"] for c in data["categories"]] == CLASS_SETS["v1"]


def test_the_two_variants_have_different_class_sets():
    assert not set(CLASS_SETS["v1"]) & set(CLASS_SETS["v2"]) and len(CLASS_SETS["v2"]) > len(CLASS_SETS["v1"])


def test_every_setting_keys_its_own_folder(tmp_path):
    base = dict(cache_dir=tmp_path, variant="v1", train_size=10, val_size=2, image_size=64, seed=0)
    folders = {dataset_folder(**base)}
    for key, value in (("variant", "v2"), ("train_size", 11), ("val_size", 3), ("image_size", 65), ("seed", 1)):
        folders.add(dataset_folder(**{**base, key: value}))
    assert len(folders) == 6


def test_an_interrupted_generation_leaves_no_half_dataset(tmp_path, monkeypatch):
    write_split = synthetic._write_split

    def fail_on_val(folder, split, *args):
        if split == "val":
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-way
        write_split(folder, split, *args)

    monkeypatch.setattr(synthetic, "_write_split", fail_on_val)
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset(tmp_path, "v2", 3, 2, 48, 0)
    assert list((tmp_path / "synthetic").iterdir()) == []  # neither the dataset nor the staging folder
    monkeypatch.setattr(synthetic, "_write_split", write_split)
    folder = ensure_dataset(tmp_path, "v2", 3, 2, 48, 0)
    assert len(list((folder / "train").glob("*.png"))) == 3 and len(list((folder / "val").glob("*.png"))) == 2


def test_a_second_call_reuses_the_cache(tmp_path, monkeypatch):
    folder = ensure_dataset(tmp_path, "v1", 3, 2, 48, 0)
    monkeypatch.setattr(synthetic, "_write_split", lambda *args: pytest.fail("regenerated a cached dataset"))
    assert ensure_dataset(tmp_path, "v1", 3, 2, 48, 0) == folder


def test_bad_generator_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="data.variant must be one of"):
        ensure_dataset(tmp_path, "v3")
    with pytest.raises(ValueError, match=r"data.image_size=16: want an integer >= 32"):
        ensure_dataset(tmp_path, "v1", 10, 2, 16)
    with pytest.raises(ValueError, match=r"data.train_size='many': want an integer >= 1"):
        ensure_dataset(tmp_path, "v1", "many", 2, 48)


def test_the_factory_returns_a_datamodule_that_knows_its_classes(tmp_path):
    module = synthetic_datamodule(str(tmp_path), "v2", 4, 2, 48, 0, batch_size=2, num_workers=0)
    assert module.num_classes == 6 and module.class_names == CLASS_SETS["v2"]


def test_generation_is_cached_and_deterministic(synthetic_folder, tmp_path):
    again = ensure_dataset(synthetic_folder.parents[1], "v1", **SHARED)
    assert again == synthetic_folder
    other = ensure_dataset(tmp_path, "v1", **SHARED)
    assert (other / "annotations" / "instances_train.json").read_text() == (
        synthetic_folder / "annotations" / "instances_train.json"
    ).read_text()
    v2 = json.loads((ensure_dataset(tmp_path, "v2", 4, 2, 64, 0) / "annotations" / "instances_train.json").read_text())
    assert len(v2["categories"]) > 4
