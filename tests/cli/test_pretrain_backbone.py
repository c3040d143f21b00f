"""`python -m detr_ft.pretrain_backbone`: cell targets follow the boxes, and the written file is a
backbone state dict that `model.backbone.weights=PATH` loads."""

import torch

from detr_ft.model.backbone import Backbone
from detr_ft.training.loop.backbone_pretraining import cell_targets
from tests.conftest import TINY_OVERRIDES, run_cli

BACKGROUND = 4


def _target(boxes_xyxy: list[list[float]], labels: list[int], size: tuple[int, int]) -> dict:
    """A target as the data pipeline makes it: normalised cxcywh boxes of an image of `size` (h, w)."""
    height, width = size
    boxes = torch.tensor(boxes_xyxy, dtype=torch.float32).reshape(-1, 4)
    cxcywh = torch.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            boxes[:, 2] - boxes[:, 0],
            boxes[:, 3] - boxes[:, 1],
        ],
        dim=1,
    )
    return {
        "boxes": cxcywh / torch.tensor([width, height, width, height]),
        "labels": torch.tensor(labels),
        "size": torch.tensor(size),
    }


def test_cells_whose_centre_lies_in_a_box_core_take_its_class():
    # 64x64 image, 8x8 grid of 8-px cells (centres at 4, 12, ..., 60); box x 16..48, y 0..32, core 0.7
    # spans x 20.8..43.2 and y 4.8..27.2: cell centres 28, 36 in x and 12, 20 in y.
    classes = cell_targets([_target([[16, 0, 48, 32]], [2], (64, 64))], (64, 64), (8, 8), BACKGROUND, core=0.7)
    expected = torch.full((8, 8), BACKGROUND)
    expected[1:3, 3:5] = 2
    assert torch.equal(classes[0], expected)


def test_a_smaller_box_wins_where_boxes_overlap_and_empty_images_are_background():
    big, small = [0, 0, 64, 64], [24, 24, 40, 40]
    classes = cell_targets(
        [_target([small, big], [1, 0], (64, 64)), _target([], [], (64, 64))], (64, 64), (8, 8), BACKGROUND, core=1.0
    )
    assert classes[0, 3, 3] == 1 and classes[0, 0, 0] == 0
    assert (classes[1] == BACKGROUND).all()


def test_boxes_of_a_padded_image_land_on_its_own_pixels():
    # A 32x32 image padded to 64x64: its box covering the whole image must fill the top-left quarter only.
    classes = cell_targets([_target([[0, 0, 32, 32]], [3], (32, 32))], (64, 64), (8, 8), BACKGROUND, core=1.0)
    assert (classes[0, :4, :4] == 3).all()
    assert (classes[0, 4:, :] == BACKGROUND).all() and (classes[0, :, 4:] == BACKGROUND).all()


def test_the_cli_writes_weights_that_the_backbone_loads_and_never_overwrites(tmp_path):
    data = [o for o in TINY_OVERRIDES if o.startswith(("model=", "data."))]
    args = ["-m", "detr_ft.pretrain_backbone", *data, f"data.cache_dir={tmp_path}/cache", "epochs=2", "num_workers=0"]
    output = tmp_path / "weights" / "backbone.pt"
    result = run_cli([*args, f"output={output}", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val accuracy on object cells" in result.stdout

    # detr_tiny's backbone shape (conf/model/detr_tiny.yaml), loading the file with no key missing.
    backbone = Backbone(
        "resnet18", ["layer2", "layer3"], weights=str(output), blocks_per_stage=[1, 1, 1, 1], last_stage="layer3"
    )
    saved = torch.load(output, weights_only=True)
    assert torch.equal(backbone.body.conv1.weight, saved["conv1.weight"])
    assert not torch.equal(saved["bn1.running_mean"], torch.zeros_like(saved["bn1.running_mean"])), "statistics learnt"

    before = output.stat().st_mtime_ns
    again = run_cli([*args, f"output={output}", f"hydra.run.dir={tmp_path}/run2"], cwd=tmp_path, timeout=300)
    assert again.returncode != 0 and "overwrite=true" in again.stderr
    assert output.stat().st_mtime_ns == before
