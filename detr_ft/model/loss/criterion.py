"""The DETR set loss: match predictions to targets, then classification (with a down-weighted
"no object" class) on every query and L1 + GIoU box losses on the matched ones; the same on every
auxiliary decoder output. The sigmoid class head's classification losses live in model/loss/sigmoid_losses.py."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from detr_ft.model.boxes import cxcywh_to_xyxy, paired_generalized_box_iou
from detr_ft.model.classification import check_form, head_rows
from detr_ft.model.loss.iou_aware import CLASS_TARGETS, iou_aware_nll, matched_iou
from detr_ft.model.loss.matcher import HungarianMatcher, PaddedTargets
from detr_ft.model.loss.set_loss_indices import MatchedIndices
from detr_ft.model.loss.sigmoid_losses import SIGMOID_LOSSES, sigmoid_class_loss
from detr_ft.model.loss.training_losses import has_training_aids, training_aid_losses

DEFAULT_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
TERMS = tuple(DEFAULT_WEIGHTS)  # the order of the columns of the per-layer terms
CLASS_LOSSES = {"softmax": ("ce",), "sigmoid": SIGMOID_LOSSES}  # criterion.class_loss for each head form


class SetCriterion(nn.Module):
    """Args: num_classes K (real classes; K is "no object"), matcher, weights of the loss terms,
    eos_coef (relative weight of the no-object class: most queries are no-object, so it would dominate);
    training-only aids, off by default: class_targets (hard | iou_aware, model/loss/iou_aware.py) and one_to_many_k
    (H-DETR's target repeats for the model's one-to-many queries, model/loss/training_losses.py); classification, the
    class head's form (softmax: the paper's; sigmoid: K logits, model/classification.py), and class_loss, its
    classification loss (softmax: ce; sigmoid: focal | ia_bce | mal, model/loss/sigmoid_losses.py)."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        weights: dict[str, float] | None = None,
        eos_coef: float = 0.1,
        class_targets: str = "hard",
        one_to_many_k: int = 6,
        classification: str = "softmax",
        class_loss: str = "ce",
    ):
        super().__init__()
        _check_class_loss(check_form(classification), class_loss, class_targets, matcher)
        if not isinstance(one_to_many_k, int) or one_to_many_k < 1:
            raise ValueError(f"criterion.one_to_many_k must be an integer >= 1, got {one_to_many_k!r}")
        self.class_targets, self.one_to_many_k = class_targets, one_to_many_k
        self.classification, self.class_loss = classification, class_loss
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"criterion.weights has unknown term(s) {unknown}; valid: {sorted(DEFAULT_WEIGHTS)}")
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        if classification == "softmax":  # the sigmoid form has no no-object class to weight
            self.register_buffer("class_weight", class_weight)
        # A term left out of `weights` does not count in the total. Not saved: derived from the config.
        term_weights = torch.tensor([self.weights.get(term, 0.0) for term in TERMS])
        self.register_buffer("term_weights", term_weights, persistent=False)

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Returns the separate terms (`loss_ce`, `loss_bbox`, `loss_giou`, aux ones suffixed `_i`,
        logging-only `class_error`) and `loss`, the weighted total to back-propagate."""
        return self.losses_and_matches(outputs, targets)[0]

    def losses_and_matches(self, outputs: dict, targets: list[dict]) -> tuple[dict[str, torch.Tensor], list]:
        """forward's losses, and the main layer's matches per image (query indices, target indices; group 0's
        with query groups), which training/reports/matching_health.py reads from the training step's output.

        Always computed in fp32, autocast or not: the losses, the matching costs and the box arithmetic
        (GIoU of small boxes) lose too much in bf16 or fp16. All decoder layers are one batch ([L, B, Q, ...],
        the main output first): one matching, one cross-entropy, one L1 and one GIoU for all of them. Outputs of
        the training-only queries go through model/loss/training_losses.py, which calls set_loss on them."""
        with torch.autocast(outputs["pred_logits"].device.type, enabled=False):
            padded = PaddedTargets(targets)
            num_boxes = self._num_boxes(targets, outputs["pred_logits"].device)
            if has_training_aids(outputs):
                return training_aid_losses(self, outputs, padded, num_boxes)
            return self.set_loss(outputs, padded, num_boxes)

    def set_loss(self, outputs: dict, padded: PaddedTargets, num_boxes) -> tuple[dict[str, torch.Tensor], list]:
        """(losses, main layer's matches) of plain outputs (pred_* [B, Q, ...], aux_outputs) against padded
        targets, box terms divided by num_boxes; called with autocast off."""
        layers = [outputs, *outputs.get("aux_outputs", [])]
        logits = _fp32(torch.stack([layer["pred_logits"] for layer in layers]))  # [L, B, Q, K+1] or [L, B, Q, K]
        self._check_logits(logits.shape[-1])
        boxes = _fp32(torch.stack([layer["pred_boxes"] for layer in layers]))  # [L, B, Q, 4]
        assignments = self.matcher.assign(logits, boxes, padded)
        matched = MatchedIndices.build(assignments, logits.shape[2], padded.labels.shape[1], logits.device)
        per_layer = self._per_layer_terms(logits, boxes, padded, matched, num_boxes)  # [L, 3]
        names = [f"{term}_{layer - 1}" if layer else term for layer in range(len(layers)) for term in TERMS]
        values = dict(zip(names, per_layer.flatten().unbind(), strict=True))
        losses = {name: values[name] for name in TERMS}
        losses["class_error"] = self._class_error(logits, padded, matched)
        losses.update(values)
        # The one place where terms are weighted: every layer's term (aux ones too) has its base term's weight.
        losses["loss"] = (per_layer * self.term_weights).sum()
        return losses, assignments[0]

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

    def _per_layer_terms(self, logits, boxes, padded, matched, num_boxes) -> torch.Tensor:
        """-> [L, 3]: loss_ce, loss_bbox, loss_giou of each layer."""
        layers = logits.shape[0]
        flat_logits = logits.flatten(0, 2)  # [L * B * Q, K+1]
        matched_labels = padded.labels.flatten()[matched.target]
        pred = boxes.flatten(0, 2)[matched.query]
        true = padded.boxes.flatten(0, 1)[matched.target]
        if self.classification == "sigmoid":  # summed over queries and classes, divided by the box count
            iou = matched_iou(pred.detach(), true) if self.class_loss != "focal" else None
            per_row = sigmoid_class_loss(self.class_loss, flat_logits, matched.query, matched_labels, iou)
            loss_ce = per_row.view(layers, -1).sum(1) / num_boxes
        else:
            target_classes = torch.full(flat_logits.shape[:1], self.num_classes, device=logits.device)
            target_classes[matched.query] = matched_labels
            # Each layer's mean weighted by the class weights, as cross_entropy(weight=...): sum w*nll / sum w.
            if self.class_targets == "iou_aware":
                nll = iou_aware_nll(flat_logits, target_classes, matched.query, pred, true)
                weighted_nll = self.class_weight[target_classes] * nll
            else:
                weighted_nll = F.cross_entropy(flat_logits, target_classes, weight=self.class_weight, reduction="none")
            weight_sum = self.class_weight[target_classes].view(layers, -1).sum(1)
            loss_ce = weighted_nll.view(layers, -1).sum(1) / weight_sum

        giou = paired_generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(true))
        per_pair = torch.stack([(pred - true).abs().sum(-1), 1 - giou], dim=1)  # [M, 2]: L1, 1 - GIoU
        box_terms = per_pair.new_zeros(layers, 2).index_add(0, matched.layer, per_pair) / num_boxes
        return torch.cat([loss_ce[:, None], box_terms], dim=1)

    def _check_logits(self, count: int) -> None:
        """The model's head must have this criterion's form (a shape: known on the host, no device wait)."""
        expected = head_rows(self.num_classes, self.classification)
        if count != expected:
            raise ValueError(
                f"the model gives {count} class logits per query, but criterion.classification={self.classification} "
                f"expects {expected} for {self.num_classes} classes: the model's head form (model.classification, "
                "which follows criterion.classification unless overridden) and the criterion's differ"
            )

    @torch.no_grad()
    def _class_error(self, logits, padded, matched) -> torch.Tensor:
        """Percentage of the main output's matched queries whose top class is wrong (for logging only)."""
        if matched.main_count == 0:
            return torch.tensor(0.0, device=logits.device)
        main = slice(0, matched.main_count)
        predicted = logits.flatten(0, 2)[matched.query[main]].argmax(-1)
        true = padded.labels.flatten()[matched.target[main]]
        return 100.0 * (1 - (predicted == true).float().mean())


def _check_class_loss(classification: str, class_loss: str, class_targets: str, matcher) -> None:
    """Raise ValueError naming the key at fault when the classification keys do not go together."""
    if class_loss not in CLASS_LOSSES[classification]:
        raise ValueError(
            f"criterion.class_loss={class_loss!r} does not go with criterion.classification={classification}; "
            f"valid: {list(CLASS_LOSSES[classification])} (or pick both at once: criterion=detr|focal|ia_bce|mal)"
        )
    if class_targets not in CLASS_TARGETS:
        raise ValueError(f"criterion.class_targets must be one of {list(CLASS_TARGETS)}, got {class_targets!r}")
    if classification == "sigmoid" and class_targets != "hard":
        raise ValueError(
            f"criterion.class_targets={class_targets} is the softmax head's; the sigmoid head's IoU-aware losses are "
            "criterion.class_loss=ia_bce or mal (criterion.class_targets must stay hard)"
        )
    if getattr(matcher, "classification", classification) != classification:
        raise ValueError(
            f"criterion.matcher.classification={matcher.classification} differs from criterion.classification="
            f"{classification}; the matcher's class cost must follow the head's form"
        )


def _fp32(tensor: torch.Tensor) -> torch.Tensor:
    """A differentiable cast to fp32, skipped (no op at all) when the tensor already is."""
    return tensor if tensor.dtype == torch.float32 else tensor.float()
