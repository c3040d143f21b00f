"""`finetune_strategy=auto`: the fine-tuning guide's rule on the number of training images.

Fewer than FROZEN_BELOW images: frozen throughout (a small set over-fits a training backbone); FROZEN_BELOW to
FULL_ABOVE: progressive, the backbone unfrozen at epoch AUTO_UNFREEZE_EPOCH; more: full. BackboneUnfreezing
(training/loop/finetuning.py) applies it when training starts, where the datamodule is known: the rule's values
replace the guide's keys (train.freeze_backbone, train.unfreeze_backbone_at_epoch) except those given on the
command line, which win as they do over the other presets; the choice is logged and tagged with its count.
"""

import logging

from hydra.core.hydra_config import HydraConfig

log = logging.getLogger(__name__)

AUTO = "auto"
FROZEN_BELOW, FULL_ABOVE = 1_000, 10_000
AUTO_UNFREEZE_EPOCH = 5
KEYS = ("freeze_backbone", "unfreeze_backbone_at_epoch")  # the rule's keys, in the unfreezing settings' order


def auto_choice(train_images: int) -> tuple[str, dict]:
    """-> (preset name, the guide's keys it sets)."""
    if train_images < FROZEN_BELOW:
        return "frozen", {"freeze_backbone": True, "unfreeze_backbone_at_epoch": -1}
    if train_images <= FULL_ABOVE:
        return "progressive", {"freeze_backbone": True, "unfreeze_backbone_at_epoch": AUTO_UNFREEZE_EPOCH}
    return "full", {"freeze_backbone": False, "unfreeze_backbone_at_epoch": -1}


def command_line_keys() -> set[str]:
    """The keys overridden on the command line (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def auto_settings(settings: tuple, train_images: int, given: set[str] | None = None) -> tuple[tuple, dict[str, str]]:
    """The unfreezing settings (freeze_backbone, unfreeze_backbone_at_epoch, unfreeze_schedule) as configured ->
    the rule's values for the keys not in `given` (default: the command line's), and the tags that record it."""
    given = command_line_keys() if given is None else given
    preset, values = auto_choice(train_images)
    kept = [f"train.{key}" for key in KEYS if f"train.{key}" in given]
    chosen = tuple(
        value if f"train.{key}" in given else values[key] for key, value in zip(KEYS, settings, strict=False)
    )
    log.info(
        "finetune_strategy=auto: %d training images -> %s (< %d frozen, up to %d progressive from epoch %d, "
        "more full)%s",
        train_images,
        preset,
        FROZEN_BELOW,
        FULL_ABOVE,
        AUTO_UNFREEZE_EPOCH,
        f"; kept from the command line: {', '.join(kept)}" if kept else "",
    )
    return (*chosen, *settings[len(KEYS) :]), {"strategy_auto": preset, "strategy_auto_train_images": str(train_images)}
