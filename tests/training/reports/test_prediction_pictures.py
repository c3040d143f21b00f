"""Pictures: boxes drawn where they belong, and a legible predictions-vs-truth grid."""

import numpy as np
import pytest
import torch
from PIL import Image

from detr_ft.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from detr_ft.inference.drawing import PREDICTION_COLOUR, draw_boxes
from detr_ft.training.reports.prediction_pictures import TILE_SIDE, TRUTH_COLOUR, prediction_grid


def grey(height: int, width: int) -> torch.Tensor:
    return torch.full((3, height, width), 128, dtype=torch.uint8)


def test_draw_boxes_draws_the_outline_in_the_colour_and_leaves_the_input_alone():
    image = grey(100, 200)
    drawn = draw_boxes(image, torch.tensor([[50.0, 40.0, 150.0, 90.0]]), [""], (255, 0, 0))
    assert drawn.dtype == torch.uint8 and drawn.shape == (3, 100, 200)
    assert drawn[:, 65, 50].tolist() == [255, 0, 0]  # left edge
    assert drawn[:, 90, 100].tolist() == [255, 0, 0]  # bottom edge
    assert drawn[:, 65, 100].tolist() == [128, 128, 128]  # inside: not filled
    assert drawn[:, 10, 10].tolist() == [128, 128, 128]  # outside
    assert torch.all(image == 128)


def test_draw_boxes_writes_labels_and_handles_no_boxes():
    image = grey(120, 160)
    labelled = draw_boxes(image, torch.tensor([[40.0, 60.0, 120.0, 110.0]]), ["cat 0.93"], (0, 0, 255))
    unlabelled = draw_boxes(image, torch.tensor([[40.0, 60.0, 120.0, 110.0]]), [""], (0, 0, 255))
    top_inside = (slice(None), slice(62, 80), slice(42, 118))  # the label sits in the box's top-left corner
    assert not torch.equal(labelled[top_inside], unlabelled[top_inside])
    below_label = (slice(None), slice(90, 108), slice(42, 118))
    assert torch.equal(labelled[below_label], unlabelled[below_label])
    assert torch.equal(draw_boxes(image, torch.zeros(0, 4), [], (0, 0, 255)), image)
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(image, torch.zeros(2, 4), ["one"], (0, 0, 255))
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(image.float(), torch.zeros(0, 4), [], (0, 0, 255))


def normalised(pixels: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels.float() / 255 - mean) / std


def batch():
    """Two images of different sizes, padded into one [2, 3, 64, 64] batch, with targets and predictions."""
    images = torch.zeros(2, 3, 64, 64)
    images[0, :, :48, :64] = normalised(grey(48, 64))
    images[1, :, :64, :40] = normalised(grey(64, 40))
    targets = [
        {"size": torch.tensor([48, 64]), "boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]]), "labels": torch.tensor([1])},
        {"size": torch.tensor([64, 40]), "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    predictions = [
        {
            "scores": torch.tensor([0.9, 0.2]),
            "labels": torch.tensor([1, 0]),
            "boxes": torch.tensor([[16.0, 12.0, 48.0, 36.0], [0.0, 0.0, 10.0, 10.0]]),
        },
        {"scores": torch.tensor([0.8]), "labels": torch.tensor([0]), "boxes": torch.tensor([[5.0, 5.0, 30.0, 50.0]])},
    ]
    return images, predictions, targets


def colour_pixels(picture: Image.Image, colour) -> np.ndarray:
    return np.all(np.asarray(picture) == np.array(colour, dtype=np.uint8), axis=-1)


def test_prediction_grid_shows_predictions_left_and_truth_right():
    images, predictions, targets = batch()
    grid = prediction_grid(images, predictions, targets, ["circle", "square"], threshold=0.5)
    assert grid.mode == "RGB"
    # Tiles enlarged to a longer side of TILE_SIDE: two columns, rows of 240 (48 x 64) and 320 (64 x 40)
    # pixels, plus a title strip and gaps.
    assert 2 * TILE_SIDE <= grid.width <= 2 * TILE_SIDE + 40
    assert 240 + 320 <= grid.height <= 240 + 320 + 80
    red, green = colour_pixels(grid, PREDICTION_COLOUR), colour_pixels(grid, TRUTH_COLOUR)
    middle, body = grid.width // 2, slice(40, None)  # below the title strip
    assert red[body, :middle].sum() > 100 and red[body, middle:].sum() == 0
    assert green[body, middle:].sum() > 100 and green[body, :middle].sum() == 0
    assert red[:28].any() and green[:28].any()  # the title names both colours


def test_prediction_grid_threshold_and_image_count():
    images, predictions, targets = batch()
    one_row = prediction_grid(images, predictions, targets, ["circle", "square"], threshold=0.5, max_images=1)
    two_rows = prediction_grid(images, predictions, targets, ["circle", "square"], threshold=0.5)
    assert one_row.height < two_rows.height
    silent = prediction_grid(images, predictions, targets, ["circle", "square"], threshold=0.95)
    assert colour_pixels(silent, PREDICTION_COLOUR)[40:].sum() == 0  # nothing scores 0.95
    empty = prediction_grid(images[:0], [], [], ["circle"])
    assert isinstance(empty, Image.Image) and empty.width > 0
