"""The model config's values, checked by train() before any data is read: a wrong one is named with what is
valid (`model.num_queries=0: want an integer >= 1`), instead of a shape error deep inside PyTorch minutes later."""

from omegaconf import DictConfig

from detr_ft.config.errors import ConfigError


def _integer(least: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= least


def _fraction(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1


def _blocks(v) -> bool:
    return v is None or (len(v) == 4 and all(map(_integer(1), v)))


# model.KEY -> (whether a value is valid, what is valid); keys a config lacks are not checked
RULES = {
    "num_queries": (_integer(1), "an integer >= 1 (detections per image)"),
    "query_groups": (_integer(1), "an integer >= 1 (1: no Group DETR)"),
    "one_to_many_queries": (_integer(0), "an integer >= 0 (0: no H-DETR block)"),
    "query_groups_init": (lambda v: v in ("copy", "fresh"), "copy or fresh"),
    "aux_loss": (lambda v: isinstance(v, bool), "true or false"),
    "transformer.d_model": (lambda v: _integer(2)(v) and v % 2 == 0, "an even integer >= 2 (the hidden width)"),
    "transformer.nhead": (_integer(1), "an integer >= 1 that divides model.transformer.d_model"),
    "transformer.num_encoder_layers": (_integer(0), "an integer >= 0"),
    "transformer.num_decoder_layers": (_integer(1), "an integer >= 1"),
    "transformer.dim_feedforward": (_integer(1), "an integer >= 1"),
    "transformer.dropout": (_fraction, "a number >= 0 and < 1"),
    "backbone.blocks_per_stage": (_blocks, "null (the ResNet's own) or 4 integers >= 1, one per stage"),
    "backbone.norm": (lambda v: v in ("frozen", "batch"), "frozen or batch"),
}


_MISSING = object()


def _value(model: DictConfig, key: str):
    node = model
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_model_values(model: DictConfig) -> None:
    """Raises ValueError naming every model.KEY whose value is out of range, with what would be valid."""
    problems = []
    for key, (valid, want) in RULES.items():
        value = _value(model, key)
        if value is not _MISSING and not valid(value):
            problems.append(f"model.{key}={value!r}: want {want}")
    d_model, heads = _value(model, "transformer.d_model"), _value(model, "transformer.nhead")
    if not problems and isinstance(d_model, int) and isinstance(heads, int) and d_model % heads:
        problems.append(f"model.transformer.nhead={heads}: want a divisor of model.transformer.d_model={d_model}")
    if problems:
        raise ConfigError("model settings out of range:\n  " + "\n  ".join(problems))
