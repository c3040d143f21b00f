"""From model outputs to detections: per-query best class and score, boxes in pixels, COCO results."""

import torch

from detr_ft.model.boxes import cxcywh_to_xyxy


@torch.no_grad()
def postprocess(outputs: dict, target_sizes: list[torch.Tensor] | torch.Tensor) -> list[dict]:
    """outputs (pred_logits [B, Q, K+1], pred_boxes [B, Q, 4]) and each image's (h, w) ->
    per image {scores [Q], labels [Q], boxes [Q, 4] xyxy in pixels of that size}.

    Scores are the softmax probability of the best real class: "no object" is dropped before the max,
    so every query yields a ranked candidate, as COCO AP expects.
    """
    probs = outputs["pred_logits"].softmax(-1)[..., :-1]
    scores, labels = probs.max(-1)
    sizes = torch.stack([torch.as_tensor(s) for s in target_sizes]).to(probs)  # [B, 2] (h, w)
    scale = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], dim=1)[:, None, :]
    boxes = cxcywh_to_xyxy(outputs["pred_boxes"].float()) * scale
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
