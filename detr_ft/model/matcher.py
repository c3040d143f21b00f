"""Hungarian matching of predictions to targets, as the DETR paper: each target gets the query that
minimises cost_class * (-p(class)) + cost_bbox * L1 + cost_giou * (-GIoU)."""

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from detr_ft.model.boxes import cxcywh_to_xyxy, generalized_box_iou


class NonFinitePredictions(FloatingPointError):
    """The model predicted NaN or infinite logits or boxes: training has diverged."""


class HungarianMatcher(nn.Module):
    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("the matcher needs at least one non-zero cost")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """outputs: pred_logits [B, Q, K+1], pred_boxes [B, Q, 4]; targets: per image `labels` [N_i],
        `boxes` [N_i, 4] (cxcywh). Returns per image (query indices, target indices), int64, len min(Q, N_i).

        Costs are computed only between each image's queries and that image's own targets, then copied
        to the host once for the whole batch. Non-finite predictions (a diverged model) make non-finite costs:
        checked there, on the host copy, so the check adds no device sync and nothing downstream (the
        criterion's GIoU) ever sees NaN boxes. Raises NonFinitePredictions.
        """
        probs = outputs["pred_logits"].softmax(-1)
        costs = []
        for b, target in enumerate(targets):
            labels, boxes = target["labels"], target["boxes"]
            # -p(class) rather than -log p: same scale as the box costs, which made matching stabler in the paper.
            cost = -self.cost_class * probs[b][:, labels]
            cost = cost + self.cost_bbox * torch.cdist(outputs["pred_boxes"][b], boxes.to(probs.dtype), p=1)
            if len(labels):
                giou = generalized_box_iou(
                    cxcywh_to_xyxy(outputs["pred_boxes"][b]), cxcywh_to_xyxy(boxes.to(probs.dtype)), validate=False
                )
                cost = cost - self.cost_giou * giou
            costs.append(cost.float())
        sizes = [c.shape[1] for c in costs]
        host = torch.cat(costs, dim=1).cpu() if costs else torch.empty(0)
        if not torch.isfinite(host).all():
            raise NonFinitePredictions("the model's predictions (class logits or boxes) are not finite (NaN or inf)")
        matches = []
        for chunk in host.split(sizes, dim=1) if costs else []:
            rows, cols = linear_sum_assignment(chunk.numpy())
            matches.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return matches
