"""The data config's values, checked where the datamodule is built: a wrong one is named with what is valid,
instead of failing deep inside PyTorch, or training on 1-pixel images."""

from collections.abc import Sequence

from detr_ft.data.categories import LABEL_MODES
from detr_ft.data.formats import FORMATS, DatasetError

MIN_SIDE = 32  # the backbone's stride: a smaller image leaves it one feature cell, or none


def _integer(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _side(value) -> bool:
    return _integer(value, MIN_SIDE)


def _names(value) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(name, str) and name.strip() for name in value)
        and len(set(value)) == len(value)
    )


SIDE = f"an integer >= {MIN_SIDE} (pixels; the backbone downsamples by 32)"
FLAG = (lambda v: isinstance(v, bool), "true or false")
# data.KEY -> (whether a value is valid, what is valid)
RULES = {
    "train_scales": (
        lambda v: isinstance(v, Sequence) and not isinstance(v, str) and len(v) > 0 and all(map(_side, v)),
        f"a non-empty list of image sides, each {SIDE}",
    ),
    "eval_scale": (_side, SIDE),
    "max_size": (lambda v: v is None or _side(v), f"null (no cap) or {SIDE}"),
    "batch_size": (lambda v: _integer(v, 1), "an integer >= 1 (train.batch_size in a run)"),
    "num_workers": (lambda v: _integer(v, 0), "an integer >= 0 (train.num_workers in a run)"),
    "num_classes": (lambda v: v is None or _integer(v, 1), "null (read from the data) or an integer >= 1"),
    "sampling_seed": (lambda v: v is None or _integer(v, -(2**63)), "null or an integer (train.seed in a run)"),
    "label_mode": (lambda v: v in LABEL_MODES, f"one of {', '.join(LABEL_MODES)}"),
    "format": (lambda v: v in FORMATS, f"one of {', '.join(FORMATS)}"),
    "classes": (lambda v: v is None or _names(v), "null or a list of distinct, non-empty class names"),
    "pin_memory": (lambda v: v is None or isinstance(v, bool), "null (on when CUDA is available), true or false"),
    "crop": FLAG,
    "train_augmentation": FLAG,
    "skip_bad_images": FLAG,
    "train_size": (lambda v: _integer(v, 1), "an integer >= 1"),
    "val_size": (lambda v: _integer(v, 1), "an integer >= 1"),
    "image_size": (_side, SIDE),
    "seed": (lambda v: _integer(v, -(2**63)), "an integer"),
}


def check_settings(**values) -> None:
    """Raises DatasetError naming every data.KEY whose value is out of range; keys without a rule pass."""
    problems = [
        f"data.{key}={value!r}: want {RULES[key][1]}"
        for key, value in values.items()
        if key in RULES and not RULES[key][0](value)
    ]
    if problems:
        raise DatasetError("data settings out of range:\n  " + "\n  ".join(problems))
