"""Hungarian matching of predictions to targets, as the DETR paper: each target gets the query that
minimises cost_class * (-p(class)) + cost_bbox * L1 + cost_giou * (-GIoU)."""

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from detr_ft.model.boxes import cxcywh_to_xyxy, generalized_box_iou

Matches = list[tuple[torch.Tensor, torch.Tensor]]


class NonFinitePredictions(FloatingPointError):
    """The model predicted NaN or infinite logits or boxes: training has diverged."""


class HungarianMatcher(nn.Module):
    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("the matcher needs at least one non-zero cost")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou

    def forward(self, outputs: dict, targets: list[dict]) -> Matches:
        """outputs: pred_logits [B, Q, K+1], pred_boxes [B, Q, 4]; targets: per image `labels` [N_i],
        `boxes` [N_i, 4] (cxcywh). Returns per image (query indices, target indices), int64, len min(Q, N_i)."""
        return self.match_layers([outputs], targets)[0]

    @torch.no_grad()
    def match_layers(self, layer_outputs: list[dict], targets: list[dict]) -> list[Matches]:
        """The matches of several outputs (the decoder's layers) against the same targets, one list per output.

        Costs are computed only between each image's queries and that image's own targets, in fp32 even under
        autocast (bf16 would round nearby costs together and change the assignment), then copied to the host
        once for all outputs together: one device-to-host transfer per training step. Non-finite predictions
        (a diverged model) make non-finite costs: checked on that host copy, so the check adds no device sync
        and nothing downstream (the criterion's GIoU) ever sees NaN boxes. Raises NonFinitePredictions.
        """
        if not targets:
            return [[] for _ in layer_outputs]
        costs = []
        with torch.autocast(layer_outputs[0]["pred_logits"].device.type, enabled=False):
            for outputs in layer_outputs:
                probs = outputs["pred_logits"].float().softmax(-1)
                pred_boxes = outputs["pred_boxes"].float()
                for b, target in enumerate(targets):
                    costs.append(self._cost(probs[b], pred_boxes[b], target["labels"], target["boxes"].float()))
        sizes = [c.shape[1] for c in costs]
        host = torch.cat(costs, dim=1).cpu() if costs else torch.empty(0)
        if not torch.isfinite(host).all():
            raise NonFinitePredictions("the model's predictions (class logits or boxes) are not finite (NaN or inf)")
        matches = []
        for chunk in host.split(sizes, dim=1):
            rows, cols = linear_sum_assignment(chunk.numpy())
            matches.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return [matches[i : i + len(targets)] for i in range(0, len(matches), len(targets))]

    def _cost(self, probs, pred_boxes, labels, boxes) -> torch.Tensor:
        """probs [Q, K+1], pred_boxes [Q, 4], labels [N], boxes [N, 4] -> cost [Q, N]."""
        # -p(class) rather than -log p: same scale as the box costs, which made matching stabler in the paper.
        cost = -self.cost_class * probs[:, labels]
        cost = cost + self.cost_bbox * torch.cdist(pred_boxes, boxes, p=1)
        if len(labels):
            cost = cost - self.cost_giou * generalized_box_iou(
                cxcywh_to_xyxy(pred_boxes), cxcywh_to_xyxy(boxes), validate=False
            )
        return cost
