"""The DETR set loss: match predictions to targets, then classification (with a down-weighted
"no object" class) on every query and L1 + GIoU box losses on the matched ones; the same on every
auxiliary decoder output."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from detr_ft.model.boxes import cxcywh_to_xyxy, generalized_box_iou
from detr_ft.model.matcher import HungarianMatcher

DEFAULT_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}


class SetCriterion(nn.Module):
    """Args: num_classes K (real classes; K is "no object"), matcher, weights of the loss terms,
    eos_coef (relative weight of the no-object class: most queries are no-object, so it would dominate)."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        weights: dict[str, float] | None = None,
        eos_coef: float = 0.1,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"criterion.weights has unknown term(s) {unknown}; valid: {sorted(DEFAULT_WEIGHTS)}")
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        self.register_buffer("class_weight", class_weight)

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Returns the separate terms (`loss_ce`, `loss_bbox`, `loss_giou`, aux ones suffixed `_i`,
        logging-only `class_error`) and `loss`, the weighted total to back-propagate.

        Always computed in fp32, autocast or not: the losses, the matching costs and the box arithmetic
        (GIoU of small boxes) lose too much in bf16 or fp16."""
        with torch.autocast(outputs["pred_logits"].device.type, enabled=False):
            layers = [_as_float(outputs)] + [_as_float(aux) for aux in outputs.get("aux_outputs", [])]
            targets = [{**t, "boxes": t["boxes"].float()} for t in targets]
            num_boxes = self._num_boxes(targets, outputs["pred_boxes"].device)
            layer_matches = self.matcher.match_layers(layers, targets)
            losses = self._losses(layers[0], targets, num_boxes, layer_matches[0])
            losses["class_error"] = self._class_error(layers[0], targets, layer_matches[0])
            for index, (aux, matches) in enumerate(zip(layers[1:], layer_matches[1:], strict=True)):
                losses.update({f"{k}_{index}": v for k, v in self._losses(aux, targets, num_boxes, matches).items()})
            # The one place where terms are weighted: aux terms share their base term's weight.
            losses["loss"] = sum(
                self.weights[name.rsplit("_", 1)[0] if name[-1].isdigit() else name] * value
                for name, value in losses.items()
                if (name.rsplit("_", 1)[0] if name[-1].isdigit() else name) in self.weights
            )
        return losses

    @staticmethod
    def _num_boxes(targets: list[dict], device) -> float | torch.Tensor:
        """Target boxes in the batch (averaged over processes under DDP), at least 1 for empty batches.

        Counted on the host (box counts are shapes), so a single process never waits for the device here."""
        count = float(sum(len(t["labels"]) for t in targets))
        if dist.is_available() and dist.is_initialized():
            total = torch.tensor(count, device=device)
            dist.all_reduce(total)
            return (total / dist.get_world_size()).clamp(min=1.0)
        return max(count, 1.0)

    def _losses(
        self, outputs: dict, targets: list[dict], num_boxes: float | torch.Tensor, matches: list
    ) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]  # [B, Q, K+1]
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        for b, (query_idx, target_idx) in enumerate(matches):
            target_classes[b, query_idx.to(logits.device)] = targets[b]["labels"][target_idx].to(logits.device)
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, weight=self.class_weight)

        pred = torch.cat([outputs["pred_boxes"][b, q] for b, (q, _) in enumerate(matches)])
        true = torch.cat([targets[b]["boxes"][t] for b, (_, t) in enumerate(matches)]).to(pred)
        loss_bbox = F.l1_loss(pred, true, reduction="sum") / num_boxes
        if len(pred):
            giou = torch.diag(generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(true)))
            loss_giou = (1 - giou).sum() / num_boxes
        else:
            loss_giou = pred.sum() * 0  # keeps the graph connected for images without boxes
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    @torch.no_grad()
    def _class_error(self, outputs: dict, targets: list[dict], matches: list) -> torch.Tensor:
        """Percentage of matched queries whose top class is wrong (for logging only)."""
        predicted = torch.cat([outputs["pred_logits"][b, q].argmax(-1) for b, (q, _) in enumerate(matches)])
        true = torch.cat([targets[b]["labels"][t] for b, (_, t) in enumerate(matches)]).to(predicted.device)
        if len(true) == 0:
            return torch.tensor(0.0, device=predicted.device)
        return 100.0 * (1 - (predicted == true).float().mean())


def _as_float(outputs: dict) -> dict:
    """A decoder layer's pred_logits and pred_boxes in fp32 (differentiable casts)."""
    return {"pred_logits": outputs["pred_logits"].float(), "pred_boxes": outputs["pred_boxes"].float()}
