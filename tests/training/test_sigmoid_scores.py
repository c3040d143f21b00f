"""How the sigmoid head's logits become detections and diagnostics: the best (query, class) pairs over all of them
(Deformable DETR's postprocess), and matching health's no-object analogue."""

import numpy as np
import pytest
import torch

from detr_ft.model.boxes import cxcywh_to_xyxy
from detr_ft.model.postprocess import MIN_SIGMOID_DETECTIONS, postprocess
from detr_ft.training.reports.matching_health import no_object_probability_sum


def _outputs(batch: int, queries: int, classes: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "pred_logits": torch.randn(batch, queries, classes, generator=generator) * 3,
        "pred_boxes": torch.rand(batch, queries, 4, generator=generator) * 0.4 + 0.2,
    }


def test_sigmoid_detections_are_the_best_query_class_pairs_highest_first():
    outputs = _outputs(2, 5, 3)
    sizes = [torch.tensor([100, 200]), torch.tensor([50, 80])]
    detections = postprocess(outputs, sizes, "sigmoid")
    for image, found in enumerate(detections):
        probs = outputs["pred_logits"][image].sigmoid()
        assert len(found["scores"]) == 15  # Q x K = 15 < 100: every pair
        assert torch.equal(found["scores"], probs.flatten().sort(descending=True).values)
        h, w = sizes[image].tolist()
        pixels = cxcywh_to_xyxy(outputs["pred_boxes"][image]) * torch.tensor([w, h, w, h])
        for score, label, box in zip(found["scores"], found["labels"], found["boxes"], strict=True):
            query = int((probs[:, label] == score).nonzero()[0])  # the pair this detection is
            assert torch.allclose(box, pixels[query])


@pytest.mark.parametrize("queries, classes, expected", [(20, 8, 100), (300, 3, 300), (10, 4, 40)])
def test_a_sigmoid_image_keeps_at_least_one_detection_per_query_and_cocos_100(queries, classes, expected):
    assert MIN_SIGMOID_DETECTIONS == 100
    found = postprocess(_outputs(1, queries, classes), [torch.tensor([64, 64])], "sigmoid")[0]
    assert len(found["scores"]) == len(found["labels"]) == len(found["boxes"]) == expected
    assert (found["scores"][:-1] >= found["scores"][1:]).all()


def test_the_softmax_postprocess_is_one_detection_per_query_without_no_object():
    outputs = _outputs(1, 5, 4)  # K + 1 = 4 logits: 3 classes and no-object
    found = postprocess(outputs, [torch.tensor([64, 64])])[0]
    expected = outputs["pred_logits"][0].softmax(-1)[:, :3].max(-1)
    assert torch.equal(found["scores"], expected.values) and torch.equal(found["labels"], expected.indices)


def test_a_bad_form_name_is_refused():
    with pytest.raises(ValueError, match=r"classification must be one of \['softmax', 'sigmoid'\]"):
        postprocess(_outputs(1, 2, 2), [torch.tensor([8, 8])], "focal")


def test_the_sigmoid_no_object_probability_is_one_minus_the_best_class_probability():
    logits = torch.tensor([[[2.0, -1.0, 0.0], [-3.0, -4.0, -5.0]], [[0.5, 0.7, -2.0], [1.0, 1.0, 1.0]]])
    matches = [(np.array([1]), np.array([0])), (np.array([0, 1]), np.array([1, 0]))]
    total = no_object_probability_sum(logits, matches, "sigmoid")
    expected = (
        (1 - torch.sigmoid(torch.tensor(-3.0)))
        + (1 - torch.sigmoid(torch.tensor(0.7)))
        + 1
        - torch.sigmoid(torch.tensor(1.0))
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert no_object_probability_sum(logits, [(np.zeros(0, int),) * 2] * 2, "sigmoid").item() == 0.0
