"""The class head's two forms, and how every consumer tells them apart.

- softmax (the DETR paper's): K + 1 logits per query, the last one "no object"; scores are softmax
  probabilities with no-object dropped.
- sigmoid (Deformable DETR, RF-DETR, DEIM): K logits per query, one independent sigmoid each, no no-object
  slot (a query that sees nothing scores low on every class). The bias starts at the prior probability 0.01
  (RetinaNet's focal-loss initialisation): most (query, class) pairs are negatives, and an untrained head
  that said 0.5 everywhere would drown the first steps in negative gradients.

`criterion.classification` picks the form; the model, the matcher and the criterion all follow it, and the
resolved config stored in each checkpoint records it (`model.classification`). The class head's row count
against the category count is a cross-check that needs no config (`form_of_head`).
"""

import math

import torch
from torch import nn

FORMS = ("softmax", "sigmoid")
CLASS_HEAD = ("class_head.weight", "class_head.bias")
SIGMOID_PRIOR = 0.01  # every class's probability at initialisation, sigmoid form


def check_form(form: str, key: str = "criterion.classification") -> str:
    """`form` if valid, else ValueError naming `key` and the valid values."""
    if form not in FORMS:
        raise ValueError(f"{key} must be one of {list(FORMS)}, got {form!r}")
    return form


def head_rows(num_classes: int, form: str) -> int:
    """Logits per query: K + 1 with the softmax's no-object slot, K for the sigmoid form."""
    return num_classes + 1 if check_form(form, "classification") == "softmax" else num_classes


def class_head(d_model: int, num_classes: int, form: str) -> nn.Linear:
    """The class head of `form`: nn.Linear's own initialisation, and in the sigmoid form the prior bias."""
    head = nn.Linear(d_model, head_rows(num_classes, form))
    if form == "sigmoid":
        nn.init.constant_(head.bias, -math.log((1 - SIGMOID_PRIOR) / SIGMOID_PRIOR))
    return head


def form_of_head(rows: int, num_classes: int) -> str | None:
    """The form a class head of `rows` rows has for K = num_classes categories (None: neither fits)."""
    return {num_classes + 1: "softmax", num_classes: "sigmoid"}.get(rows)


def form_of_config(config) -> str:
    """The form a stored (resolved) config records; configs written before the sigmoid head existed: softmax."""
    model = config.get("model") if config is not None else None
    return str((model or {}).get("classification", "softmax"))


def fit_class_head(
    state: dict, class_ids, source_form: str | None, source_format: str, model
) -> tuple[list, str | None]:
    """A checkpoint's class head (`class_head.*` of `state`, changed in place) readied for `model` -> (keys dropped,
    "softmax -> sigmoid" or None). Of another form (source_form; by default softmax for official and Hugging Face
    weights, the model's own for ours) it is dropped whatever its size: its rows mean other things. Else
    `class_ids` (class_ids[label] = the source row for that label) picks rows; a softmax head keeps its last,
    no-object row."""
    form = getattr(model, "classification", "softmax")
    source_form = source_form or (form if source_format == "detr_ft" else "softmax")
    if source_form != form:
        return [key for key in CLASS_HEAD if state.pop(key, None) is not None], f"{source_form} -> {form}"
    if class_ids is not None and CLASS_HEAD[0] in state:
        no_object = [len(state[CLASS_HEAD[0]]) - 1] if form == "softmax" else []
        rows = torch.as_tensor([*class_ids, *no_object])
        for key in CLASS_HEAD:
            state[key] = state[key][rows]
    return [], None
