"""IoU-aware classification targets (Align-DETR, arXiv 2304.07527; RF-DETR's ia_bce_loss) in softmax form.

A matched query's class target is a quality t = p^alpha x IoU^(1 - alpha) (p: its softmax probability of the
target class, IoU with its target box, both detached; alpha = 0.25 as RF-DETR) on the class and 1 - t on
"no object", instead of 1 on the class: a well-placed box learns a high score, a poor one a lower score, so
scores rank boxes by quality. Scores stay a softmax with a no-object class: postprocess and exports are
unchanged. With t = 1 it is exactly the cross-entropy.
"""

import torch

from detr_ft.model.boxes import cxcywh_to_xyxy, paired_iou

CLASS_TARGETS = ("hard", "iou_aware")
ALPHA = 0.25


def matched_iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """IoU of each row's pair: pred and true [M, 4] cxcywh -> [M]."""
    return paired_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(true))[0]


def iou_aware_nll(
    logits: torch.Tensor,
    target_classes: torch.Tensor,
    matched_rows: torch.Tensor,
    pred: torch.Tensor,
    true: torch.Tensor,
) -> torch.Tensor:
    """logits [R, K+1] and target_classes [R] (K = no object) of the flat prediction rows, matched_rows [M] the
    matched rows and pred, true [M, 4] their boxes and targets -> the soft-target negative log-likelihood [R]
    (unweighted: the criterion applies the class weights and the normaliser)."""
    log_p = logits.log_softmax(-1)
    per_row = -log_p.gather(-1, target_classes.unsqueeze(-1)).squeeze(-1)
    if len(matched_rows):  # a shape: known on the host
        log_class = log_p[matched_rows, target_classes[matched_rows]]
        log_none = log_p[matched_rows, -1]
        iou = matched_iou(pred, true).detach().clamp(min=0)
        quality = (log_class.detach().exp() ** ALPHA * iou ** (1 - ALPHA)).clamp(max=1)
        per_row = per_row.index_put((matched_rows,), -(quality * log_class + (1 - quality) * log_none))
    return per_row
