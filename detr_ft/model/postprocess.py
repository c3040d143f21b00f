"""From model outputs to detections: per-query best class and score, boxes in pixels, COCO results."""

import torch

from detr_ft.model.boxes import cxcywh_to_xyxy
from detr_ft.model.classification import check_form

# The sigmoid head's detections per image: the best (query, class) pairs, at least one per query and at least
# COCO's maxDets (100, all that AP ever looks at), as Deformable DETR keeps its top 100.
MIN_SIGMOID_DETECTIONS = 100


@torch.no_grad()
def postprocess(
    outputs: dict, target_sizes: list[torch.Tensor] | torch.Tensor, classification: str = "softmax"
) -> list[dict]:
    """outputs (pred_logits [B, Q, K+1] softmax or [B, Q, K] sigmoid, pred_boxes [B, Q, 4]) and each image's
    (h, w) -> per image {scores [D], labels [D], boxes [D, 4] xyxy in pixels of that size}, D detections.

    softmax (D = Q): the probability of each query's best real class: "no object" is dropped before the max,
    so every query yields a ranked candidate, as COCO AP expects. sigmoid (D = min(Q x K, max(Q, 100))): the
    best-scoring (query, class) pairs over all Q x K, highest first, as Deformable DETR: a query may stand for
    two classes of one box when both score high.
    """
    if check_form(classification, "classification") == "sigmoid":
        probs = outputs["pred_logits"].sigmoid()
        count = min(probs.shape[1] * probs.shape[2], max(probs.shape[1], MIN_SIGMOID_DETECTIONS))
        scores, pairs = probs.flatten(1).topk(count, dim=1)
        queries, labels = pairs // probs.shape[2], pairs % probs.shape[2]
    else:
        probs = outputs["pred_logits"].softmax(-1)[..., :-1]
        scores, labels = probs.max(-1)
        queries = None
    sizes = torch.stack([torch.as_tensor(s) for s in target_sizes]).to(probs)  # [B, 2] (h, w)
    scale = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], dim=1)[:, None, :]
    boxes = cxcywh_to_xyxy(outputs["pred_boxes"].float()) * scale
    if queries is not None:
        boxes = boxes.gather(1, queries[..., None].expand(-1, -1, 4))
    return [{"scores": s, "labels": lab, "boxes": b} for s, lab, b in zip(scores, labels, boxes, strict=True)]


def to_coco_results(predictions: list[dict], image_ids: list[int], category_map) -> list[dict]:
    """COCO results format (image_id, category_id in the file's ids, bbox xywh, score)."""
    results = []
    for prediction, image_id in zip(predictions, image_ids, strict=True):
        boxes = prediction["boxes"].cpu()
        widths_heights = boxes[:, 2:] - boxes[:, :2]
        for score, label, (x0, y0), (w, h) in zip(
            prediction["scores"].tolist(),
            prediction["labels"].tolist(),
            boxes[:, :2].tolist(),
            widths_heights.tolist(),
            strict=True,
        ):
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": category_map.category_id_of(label),
                    "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                    "score": round(score, 5),
                }
            )
    return results
