"""Hungarian matching of predictions to targets, as the DETR paper: each target gets the query that
minimises cost_class * (-p(class)) + cost_bbox * L1 + cost_giou * (-GIoU). With the sigmoid class head
(model/classification.py) the class cost takes the focal form instead (model/loss/sigmoid_losses.py), as Deformable
DETR, RF-DETR and DEIM match.

The costs of every decoder layer and every image are one batched computation on the device ([L, B, Q, N], the
targets padded to the batch's most boxes N), copied to the host once; only the assignments (scipy) run per image.
"Images" are any rows of equal query counts: Group DETR's query groups match as images of their own (outputs
[L, B, K*Q] viewed as [L, B*K, Q], each image's padded targets repeated K times).
"""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from detr_ft.model.boxes import cxcywh_to_xyxy, generalized_box_iou
from detr_ft.model.classification import check_form
from detr_ft.model.loss.sigmoid_losses import focal_class_cost

Matches = list[tuple[torch.Tensor, torch.Tensor]]
Assignments = list[list[tuple[np.ndarray, np.ndarray]]]  # per layer, per image: (query indices, target indices)


class NonFinitePredictions(FloatingPointError):
    """The model predicted NaN or infinite logits or boxes: training has diverged."""


class PaddedTargets:
    """A batch's targets as two padded tensors: labels [B, N] and fp32 cxcywh boxes [B, N, 4] (N: the most boxes
    of one image; padding is label 0 and a finite box, never matched), and each image's box count."""

    def __init__(self, targets: list[dict]):
        self.sizes = [len(target["labels"]) for target in targets]
        pad = torch.nn.utils.rnn.pad_sequence
        self.labels = pad([target["labels"] for target in targets], batch_first=True)
        boxes = pad([target["boxes"] for target in targets], batch_first=True, padding_value=0.5)
        self.boxes = boxes if boxes.dtype == torch.float32 else boxes.float()

    @classmethod
    def of(cls, labels: torch.Tensor, boxes: torch.Tensor, sizes: list[int]) -> "PaddedTargets":
        padded = cls.__new__(cls)
        padded.labels, padded.boxes, padded.sizes = labels, boxes, sizes
        return padded

    def images_repeated(self, k: int) -> "PaddedTargets":
        """Each image's targets k times in a row (image b's copy g at row b * k + g): Group DETR's groups."""
        repeat = [size for size in self.sizes for _ in range(k)]
        return self.of(self.labels.repeat_interleave(k, 0), self.boxes.repeat_interleave(k, 0), repeat)

    def boxes_repeated(self, k: int) -> "PaddedTargets":
        """Each image's boxes k times over, padding after them (H-DETR's one-to-many targets): one gather."""
        columns = np.zeros((len(self.sizes), k * max(self.sizes, default=0)), dtype=np.int64)
        for image, size in enumerate(self.sizes):  # host arithmetic on the box counts only
            columns[image, : k * size] = np.arange(k * size) % max(size, 1)
        index = torch.from_numpy(columns).to(self.labels.device)
        boxes = self.boxes.gather(1, index[..., None].expand(-1, -1, 4))
        return self.of(self.labels.gather(1, index), boxes, [k * size for size in self.sizes])


class HungarianMatcher(nn.Module):
    """Args: the weights of the class, L1 and GIoU costs, and the class head's form (softmax: -p(class); sigmoid:
    the focal cost)."""

    def __init__(
        self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0, classification: str = "softmax"
    ):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("the matcher needs at least one non-zero cost")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.classification = check_form(classification, "criterion.matcher.classification")

    def forward(self, outputs: dict, targets: list[dict]) -> Matches:
        """outputs: pred_logits [B, Q, K+1] (softmax) or [B, Q, K] (sigmoid), pred_boxes [B, Q, 4]; targets: per
        image `labels` [N_i], `boxes` [N_i, 4] (cxcywh). Returns per image (query indices, target indices), int64,
        len min(Q, N_i)."""
        return self.match_layers([outputs], targets)[0]

    @torch.no_grad()
    def match_layers(self, layer_outputs: list[dict], targets: list[dict]) -> list[Matches]:
        """The matches of several outputs (the decoder's layers) against the same targets, one list per output."""
        if not targets:
            return [[] for _ in layer_outputs]
        logits = torch.stack([outputs["pred_logits"] for outputs in layer_outputs])
        boxes = torch.stack([outputs["pred_boxes"] for outputs in layer_outputs])
        assignments = self.assign(logits, boxes, PaddedTargets(targets))
        return [[(torch.as_tensor(q), torch.as_tensor(t)) for q, t in layer] for layer in assignments]

    @torch.no_grad()
    def assign(self, logits: torch.Tensor, boxes: torch.Tensor, targets: PaddedTargets) -> Assignments:
        """logits [L, B, Q, K+1] or [L, B, Q, K] (sigmoid), boxes [L, B, Q, 4] (L layers of B images) -> per
        layer, per image the host arrays (query indices, target indices), int64.

        Costs are computed in fp32 even under autocast (bf16 would round nearby costs together and change the
        assignment), then copied to the host at once: one device-to-host transfer per training step. Non-finite
        predictions (a diverged model) make non-finite costs: checked on that host copy, so the check adds no
        device sync and nothing downstream (the criterion's GIoU) ever sees NaN boxes. Raises
        NonFinitePredictions.
        """
        layers, images = logits.shape[:2]
        if max(targets.sizes, default=0) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return [[(empty, empty)] * images for _ in range(layers)]
        with torch.autocast(logits.device.type, enabled=False):
            cost = self._cost(logits.float(), boxes.float(), targets.labels, targets.boxes)
        host = cost.cpu().numpy()  # [L, B, Q, N]
        if not np.isfinite(host).all():  # padding costs are finite: only a prediction can make this fail
            raise NonFinitePredictions("the model's predictions (class logits or boxes) are not finite (NaN or inf)")
        return [
            [_assignment(host[layer, image, :, :size]) for image, size in enumerate(targets.sizes)]
            for layer in range(layers)
        ]

    def _cost(self, logits, pred_boxes, labels, boxes) -> torch.Tensor:
        """logits [L, B, Q, C], pred_boxes [L, B, Q, 4], labels [B, N], boxes [B, N, 4] -> cost [L, B, Q, N]."""
        index = labels[None, :, None, :].expand(*logits.shape[:3], labels.shape[-1])
        if self.classification == "sigmoid":
            cost = self.cost_class * focal_class_cost(logits.gather(-1, index))  # elementwise: gathered first
        else:
            # -p(class) rather than -log p: same scale as the box costs, which made matching stabler in the paper.
            class_probs = logits.softmax(-1).gather(-1, index)
            cost = -self.cost_class * class_probs
        cost = cost + self.cost_bbox * torch.cdist(pred_boxes, boxes[None].expand(len(logits), -1, -1, -1), p=1)
        giou = generalized_box_iou(cxcywh_to_xyxy(pred_boxes), cxcywh_to_xyxy(boxes)[None], validate=False)
        cost = cost - self.cost_giou * giou
        return cost


def _assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.int64, copy=False), cols.astype(np.int64, copy=False)
