"""Classification losses and the matching cost of the sigmoid class head (model/classification.py): every
(query, class) pair is a binary problem, positive only at a matched query's target class.

- focal (RetinaNet, arXiv 1708.02002; Deformable DETR's loss): -alpha_t (1 - p_t)^gamma log p_t, alpha 0.25,
  gamma 2: easy negatives, the great majority, weigh little.
- ia_bce (RF-DETR's IoU-aware BCE, after Align-DETR arXiv 2304.07527): a positive's target is its quality
  t = p^0.25 x IoU^0.75 (p its probability of the class, IoU of its box with the target's, both detached),
  clamped to at least 0.01: -t log p - (1 - t) log(1 - p); a negative is -p^2 log(1 - p). Scores learn to rank
  boxes by how well they fit.
- mal (DEIM's matchability-aware loss, arXiv 2412.04234): a positive's target is IoU^1.5, -q log p - (1 - q)
  log(1 - p) with q = IoU^1.5; a negative is -p^1.5 log(1 - p), its weight p^1.5 detached (as DEIM).

Each returns, per prediction row, the sum over the K classes; the criterion sums the rows of a decoder layer
and divides by the box count, as Deformable DETR, RF-DETR and DEIM normalise.
"""

import torch
import torch.nn.functional as F

SIGMOID_LOSSES = ("focal", "ia_bce", "mal")
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
IA_BCE_ALPHA, IA_BCE_MIN_TARGET = 0.25, 0.01  # RF-DETR: target p^alpha x IoU^(1 - alpha), at least 0.01
MAL_GAMMA = 1.5


def sigmoid_class_loss(
    loss: str, logits: torch.Tensor, matched_rows: torch.Tensor, labels: torch.Tensor, iou: torch.Tensor | None
) -> torch.Tensor:
    """logits [R, K] of the flat prediction rows; matched_rows [M] the matched rows, labels [M] their target
    classes and iou [M] (detached; ia_bce and mal only) their boxes' IoU with the targets -> loss per row [R]."""
    positive = (matched_rows, labels)
    if loss == "focal":
        target = torch.zeros_like(logits).index_put(positive, torch.ones_like(labels, dtype=logits.dtype))
        return focal_loss(logits, target).sum(-1)
    prob = logits.sigmoid()
    if loss == "ia_bce":
        quality = prob[positive].detach() ** IA_BCE_ALPHA * iou ** (1 - IA_BCE_ALPHA)
        quality = quality.clamp(min=IA_BCE_MIN_TARGET)
        positive_weight = torch.zeros_like(logits).index_put(positive, quality)
        negative_weight = (prob**FOCAL_GAMMA).index_put(positive, 1 - quality)
        per_pair = -positive_weight * F.logsigmoid(logits) - negative_weight * F.logsigmoid(-logits)
        return per_pair.sum(-1)
    if loss == "mal":
        target = torch.zeros_like(logits).index_put(positive, iou**MAL_GAMMA)
        weight = (prob.detach() ** MAL_GAMMA).index_put(positive, torch.ones_like(iou))
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none").sum(-1)
    raise ValueError(f"criterion.class_loss for the sigmoid head must be one of {list(SIGMOID_LOSSES)}, got {loss!r}")


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise sigmoid focal loss of logits against 0/1 targets (same shape)."""
    prob = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = FOCAL_ALPHA * target + (1 - FOCAL_ALPHA) * (1 - target)
    return alpha_t * (1 - p_t) ** FOCAL_GAMMA * cross_entropy


def focal_class_cost(logits: torch.Tensor) -> torch.Tensor:
    """The matcher's class cost in the focal form (Deformable DETR, RF-DETR, DEIM): logits [..., K] -> [..., K],
    the focal loss of calling the pair positive minus that of calling it negative (lower = a better match)."""
    prob = logits.sigmoid()
    positive = FOCAL_ALPHA * (1 - prob) ** FOCAL_GAMMA * -F.logsigmoid(logits)
    negative = (1 - FOCAL_ALPHA) * prob**FOCAL_GAMMA * -F.logsigmoid(-logits)
    return positive - negative
