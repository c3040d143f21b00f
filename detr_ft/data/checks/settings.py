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
RULES = {
    "train_scales": lambda v: isinstance(v, Sequence) and not isinstance(v, str) and len(v) > 0 and all(map(_side, v)),
    "eval_scale": _side,
    "max_size": lambda v: v is None or _side(v),
    "batch_size": lambda v: _integer(v, 1),
    "num_workers": lambda v: _integer(v, 0),
    "num_classes": lambda v: v is None or _integer(v, 1),
    "sampling_seed": lambda v: v is None or _integer(v, -(2**63)),
    "label_mode": lambda v: v in LABEL_MODES,
    "format": lambda v: v in FORMATS,
    "classes": lambda v: v is None or _names(v),
    "pin_memory": lambda v: v is None or isinstance(v, bool),
    "crop": lambda v: isinstance(v, bool),
    "train_augmentation": lambda v: isinstance(v, bool),
    "skip_bad_images": lambda v: isinstance(v, bool),
    "train_size": lambda v: _integer(v, 1),
    "val_size": lambda v: _integer(v, 1),
    "image_size": _side,
    "seed": lambda v: _integer(v, -(2**63)),
}
VALID = {
    "train_scales": f"a non-empty list of image sides, each {SIDE}",
    "eval_scale": SIDE,
    "max_size": f"null (no cap) or {SIDE}",
    "batch_size": "an integer >= 1 (train.batch_size in a run)",
    "num_workers": "an integer >= 0 (train.num_workers in a run)",
    "num_classes": "null (read from the data) or an integer >= 1",
    "sampling_seed": "null or an integer (train.seed in a run)",
    "label_mode": f"one of {', '.join(LABEL_MODES)}",
    "format": f"one of {', '.join(FORMATS)}",
    "classes": "null or a list of distinct, non-empty class names",
    "pin_memory": "null (on when CUDA is available), true or false",
    "train_size": "an integer >= 1",
    "val_size": "an integer >= 1",
    "image_size": SIDE,
    "seed": "an integer",
}


def check_settings(**values) -> None:
    """Raises DatasetError naming every data.KEY whose value is out of range; keys without a rule pass."""
    problems = [
        f"data.{key}={value!r}: want {VALID.get(key, 'true or false')}"
        for key, value in values.items()
        if key in RULES and not RULES[key](value)
    ]
    if problems:
        raise DatasetError("data settings out of range:\n  " + "\n  ".join(problems))
