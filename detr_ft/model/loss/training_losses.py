"""The set loss of the training-only aids' outputs (model/query_groups.py), through the batched SetCriterion.

- Group DETR: the K groups of an image are K images of their own to the criterion: outputs [L, B, K x Q, ...]
  viewed as [L, B x K, Q, ...] and each image's padded targets repeated K times, so every group is matched
  one-to-one on its own (main and auxiliary layers, one matching for all) and the box terms are divided by
  K x num_boxes: the mean of the groups' losses, as LW-DETR and RF-DETR normalise (num_boxes x group_detr). The
  classification term, a weighted mean over all queries, is the groups' mean as well.
- H-DETR's one-to-many block: matched to each image's targets repeated `one_to_many_k` times; its total is
  added with weight ONE_TO_MANY_WEIGHT (H-DETR's default, 1) and its terms are logged under `one_to_many/`.
"""

from detr_ft.model.loss.matcher import PaddedTargets

ONE_TO_MANY_WEIGHT = 1.0
LOGGED_TERMS = ("loss", "loss_ce", "loss_bbox", "loss_giou")
PREDICTIONS = ("pred_logits", "pred_boxes")


def has_training_aids(outputs: dict) -> bool:
    return "query_groups" in outputs or "one_to_many" in outputs


def groups_as_images(outputs: dict, groups: int) -> dict:
    """outputs with [B, K x Q, ...] predictions -> views [B x K, Q, ...] (image b's group g at row b x K + g)."""

    def fold(layer: dict) -> dict:
        return {key: layer[key].reshape(layer[key].shape[0] * groups, -1, layer[key].shape[-1]) for key in PREDICTIONS}

    folded = fold(outputs)
    if "aux_outputs" in outputs:
        folded["aux_outputs"] = [fold(aux) for aux in outputs["aux_outputs"]]
    return folded


def training_aid_losses(criterion, outputs: dict, padded: PaddedTargets, num_boxes) -> tuple[dict, list]:
    """criterion's losses for outputs that carry training-only queries (same keys, plus `one_to_many/*`), and
    group 0's main-layer matches per image."""
    groups = outputs.get("query_groups", 1)
    main = {key: outputs[key] for key in (*PREDICTIONS, "aux_outputs") if key in outputs}
    if groups > 1:
        main, padded_main = groups_as_images(main, groups), padded.images_repeated(groups)
        losses, matches = criterion.set_loss(main, padded_main, num_boxes * groups)
    else:
        losses, matches = criterion.set_loss(main, padded, num_boxes)
    if "one_to_many" in outputs:
        k = criterion.one_to_many_k
        extra, _ = criterion.set_loss(outputs["one_to_many"], padded.boxes_repeated(k), num_boxes * k)
        losses.update({f"one_to_many/{name}": extra[name] for name in LOGGED_TERMS})
        losses["loss"] = losses["loss"] + ONE_TO_MANY_WEIGHT * extra["loss"]
    # Matching health follows group 0, the queries evaluation keeps: row b x K of the folded batch is image b's.
    return losses, matches[::groups]
