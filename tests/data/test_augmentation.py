"""The paper's augmentation reaches training through the config: over many draws of the same images, the
train split is mirrored about half the time, its shorter sides are exactly `data.train_scales` (capped by
`data.max_size`), about half of the draws are cropped when `data.crop` is true and none when it is false;
the eval splits are never mirrored nor cropped and always resized to `data.eval_scale`.

Each test composes the real config (conf/config.yaml and its data group) with Hydra and builds the
datamodule as the app does, keeping the data group's own scales, max_size, eval_scale and crop (tiny_cfg
shrinks those). Seeded, so every count is deterministic; each tolerance is one that a fair coin passes
with overwhelming probability for its number of draws (at least 3.5 standard deviations).

A draw is classified by its boxes against the annotation: a resize leaves normalised boxes unchanged, a
flip maps cx to 1 - cx (images are chosen with an object off the centre line), anything else is a crop.
"""

import json
import random

import hydra
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from PIL import Image

from detr_ft.config.schema import config_dir
from detr_ft.data import DetectionDataModule

SYNTHETIC_SCALES = [96, 112, 128, 144]  # conf/data/synthetic*.yaml
COCO_SCALES = list(range(480, 801, 32))  # conf/data/coco.yaml: the paper's 480, 512, ..., 800


@pytest.fixture(autouse=True)
def one_thread():
    """Hundreds of small resizes: a second thread only adds contention on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def recipe(data_cache):
    """recipe(*overrides) -> the composed config, with the data group's own augmentation settings (the
    default data group unless an override picks one); only the synthetic data's split sizes are shrunk."""

    def make(*overrides: str) -> DictConfig:
        picked = next((o.split("=", 1)[1] for o in overrides if o.startswith("data=")), "synthetic_v2")
        small = [f"data.cache_dir={data_cache}", "data.train_size=8", "data.val_size=4"]
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("config", overrides=[*(small if picked.startswith("synthetic") else []), *overrides])

    yield make
    GlobalHydra.instance().clear()


def _module(cfg: DictConfig, batch_size: int = 1) -> DetectionDataModule:
    # unseeded: the draws come from the seeds _seed() sets, not from (train.seed, epoch, image) with the epoch fixed
    module = hydra.utils.instantiate(cfg.data, batch_size=batch_size, num_workers=0, sampling_seed=None)
    module.setup("fit")
    return module


def _seed(seed: int = 0) -> None:
    torch.manual_seed(seed)  # the flip and the loader's shuffle draw from torch
    random.seed(seed)  # the scales and the crop from python's random


def _reference(dataset, index: int) -> torch.Tensor:
    """The annotation's boxes of item `index`, cxcywh normalised: what any pure resize returns."""
    image_id = dataset.image_ids[index]
    info = dataset.coco.imgs[image_id]
    boxes = [a["bbox"] for a in dataset.coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
    x, y, w, h = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4).unbind(-1)
    size = torch.tensor([info["width"], info["height"], info["width"], info["height"]])
    return torch.stack([x + w / 2, y + h / 2, w, h], dim=-1) / size


def _outcome(boxes: torch.Tensor, reference: torch.Tensor) -> str:
    """'plain' (resized only), 'mirrored' (flipped and resized) or 'cropped' (anything else)."""
    mirrored = reference.clone()
    mirrored[:, 0] = 1 - mirrored[:, 0]
    if boxes.shape == reference.shape:
        if torch.allclose(boxes, reference, atol=1e-3):
            return "plain"
        if torch.allclose(boxes, mirrored, atol=1e-3):
            return "mirrored"
    return "cropped"


def _off_centre(dataset, count: int) -> list[int]:
    """Items with an object whose centre is clear of the vertical centre line (so a flip shows)."""
    found = [i for i in range(len(dataset)) if (_reference(dataset, i)[:, 0] - 0.5).abs().gt(0.05).any()]
    assert len(found) >= count, "the synthetic data should hold images with objects off the centre line"
    return found[:count]


def _outcomes(dataset, indices: list[int], draws: int) -> tuple[dict, set]:
    """Draw each item `draws` times: outcome counts and the set of output (height, width)."""
    counts, sizes = {"plain": 0, "mirrored": 0, "cropped": 0}, set()
    for index in indices:
        reference = _reference(dataset, index)
        for _ in range(draws):
            image, target = dataset[index]
            counts[_outcome(target["boxes"], reference)] += 1
            sizes.add(tuple(image.shape[-2:]))
            assert target["size"].tolist() == list(image.shape[-2:])
    return counts, sizes


@pytest.mark.parametrize("data", [None, "synthetic"])
def test_train_mirrors_about_half_the_draws_and_eval_never(recipe, data):
    """400 draws (2 images x 200): a fair coin lands in 0.5 +- 0.1 with probability 1 - 6e-5."""
    cfg = recipe(*([f"data={data}"] if data else []))
    assert cfg.data.crop is False  # synthetic*.yaml: flip and scales only, so every draw is plain or mirrored
    module = _module(cfg)
    _seed()
    train = module.datasets["train"]
    counts, _ = _outcomes(train, _off_centre(train, 2), 200)
    assert counts["cropped"] == 0, counts
    assert abs(counts["mirrored"] / 400 - 0.5) <= 0.1, counts
    val = module.val_dataset
    counts, sizes = _outcomes(val, _off_centre(val, 2), 20)
    assert counts == {"plain": 40, "mirrored": 0, "cropped": 0}
    assert sizes == {(cfg.data.eval_scale, cfg.data.eval_scale)}  # square images


@pytest.mark.parametrize(
    ("overrides", "scales", "eval_scale"),
    [
        ([], SYNTHETIC_SCALES, 128),  # the default data group, synthetic_v2
        (["data=synthetic"], SYNTHETIC_SCALES, 128),
        (["data=synthetic", "data.train_scales=[72,88]", "data.eval_scale=80"], [72, 88], 80),
        (["data=synthetic", "data.max_size=120"], [96, 112, 120], 120),  # 128 and 144 capped by max_size
    ],
    ids=["default", "synthetic", "scales_overridden", "max_size_overridden"],
)
def test_train_shorter_sides_are_the_configured_scales_and_eval_one(recipe, overrides, scales, eval_scale):
    """Through the loaders Lightning uses: 25 epochs of 8 images, batch size 1 (so the padded batch is the
    image). A scale missing from 200 draws among 4 has probability 4 x (3/4)^200, about 1e-25."""
    cfg = recipe(*overrides)
    if "scales" not in "".join(overrides):
        assert list(cfg.data.train_scales) == SYNTHETIC_SCALES
    module = _module(cfg)
    _seed()
    shapes = [tuple(images.shape[-2:]) for _ in range(25) for images, _, _ in module.train_dataloader()]
    assert len(shapes) == 200 and all(h == w for h, w in shapes)  # square images, resized, never cropped
    assert sorted({h for h, _ in shapes}) == scales
    assert max(max(shape) for shape in shapes) <= cfg.data.max_size
    val_shapes = {tuple(images.shape[-2:]) for _ in range(3) for images, _, _ in module.val_dataloader()}
    assert val_shapes == {(eval_scale, eval_scale)}


@pytest.mark.parametrize("crop", [True, False])
def test_train_crops_about_half_the_draws_when_data_crop_is_true(recipe, crop):
    """400 draws (2 images x 200), crop_probability 0.5. About 1 crop in 50 keeps the whole image
    (resize to 72 then crop 72 x 72) and cannot be seen, so the expected fraction is about 0.49."""
    cfg = recipe("data=synthetic", f"data.crop={str(crop).lower()}")
    module = _module(cfg)
    _seed()
    train = module.datasets["train"]
    counts, sizes = _outcomes(train, _off_centre(train, 2), 200)
    if crop:
        assert abs(counts["cropped"] / 400 - 0.5) <= 0.1, counts
        assert any(h != w for h, w in sizes)  # crops change the aspect ratio of these square images
        assert abs(counts["mirrored"] / (counts["plain"] + counts["mirrored"]) - 0.5) <= 0.15, counts
    else:
        assert counts["cropped"] == 0 and all(h == w for h, w in sizes), (counts, sizes)
    # a crop is resized to a scale as well, unless its long side would pass max_size (then capped to it)
    assert all(min(size) in SYNTHETIC_SCALES or max(size) == cfg.data.max_size for size in sizes), sizes
    assert max(max(size) for size in sizes) <= cfg.data.max_size


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """A COCO 2017 layout (train2017, val2017, annotations/instances_*2017.json) holding one 48 x 64 image
    per split: a left-to-right grey ramp (so a mirrored draw shows even when cropped) and one object."""
    root = tmp_path_factory.mktemp("coco")
    ramp = np.repeat(np.repeat(np.arange(0, 256, 4, dtype=np.uint8)[None, :, None], 48, axis=0), 3, axis=2)
    (root / "annotations").mkdir()
    for split in ("train2017", "val2017"):
        (root / split).mkdir()
        Image.fromarray(ramp).save(root / split / "a.png")
        annotation = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [6, 9, 20, 30], "area": 600, "iscrowd": 0}
        data = {
            "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
            "annotations": [annotation],
            "categories": [{"id": 1, "name": "thing"}],
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def _ramp_mirrored(image: torch.Tensor) -> bool:
    return bool(image[:, :, :4].mean() > image[:, :, -4:].mean())


def test_coco_recipe_is_the_papers_augmentation(recipe, coco_root):
    """conf/data/coco.yaml: 11 scales 480..800, max_size 1333, crop on. 200 draws (these are large
    images): each scale appears (missing one: 11 x (10/11)^200, about 6e-8), and the mirrored and cropped
    fractions lie in 0.5 +- 0.15 (4.2 standard deviations); with data.crop=false nothing is cropped."""
    cfg = recipe("data=coco", f"data.root={coco_root}")
    assert list(cfg.data.train_scales) == COCO_SCALES
    assert (cfg.data.max_size, cfg.data.eval_scale, cfg.data.crop) == (1333, 800, True)
    module = _module(cfg)
    train, reference = module.datasets["train"], _reference(module.datasets["train"], 0)
    _seed()
    mirrored = cropped = 0
    shorter = set()
    for _ in range(200):
        image, target = train[0]
        height, width = image.shape[-2:]
        assert max(height, width) <= 1333
        shorter.add(min(height, width))
        flipped = _ramp_mirrored(image)
        mirrored += flipped
        outcome = _outcome(target["boxes"], reference)
        if outcome == "cropped":
            cropped += 1
        else:  # a pure resize keeps the 4:3 aspect ratio, and the boxes agree with the pixels on the flip
            assert abs(width - height * 4 / 3) <= 1 and (outcome == "mirrored") == flipped
    assert sorted(shorter) == COCO_SCALES
    assert abs(mirrored / 200 - 0.5) <= 0.15 and abs(cropped / 200 - 0.5) <= 0.15, (mirrored, cropped)
    for _ in range(3):
        image, target = module.val_dataset[0]
        assert tuple(image.shape[-2:]) == (800, 1067) and not _ramp_mirrored(image)
        assert _outcome(target["boxes"], reference) == "plain"

    uncropped = _module(recipe("data=coco", f"data.root={coco_root}", "data.crop=false")).datasets["train"]
    outcomes = [_outcome(uncropped[0][1]["boxes"], reference) for _ in range(30)]
    assert "cropped" not in outcomes and "mirrored" in outcomes
