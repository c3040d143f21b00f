"""A state dict in any supported layout (weight_layouts.py) loaded into our DETR: a class head of another size or
form re-initialised, query embeddings fitted to the model's count, training-only queries filled; reported."""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detr_ft.checkpoints.safe_read import CheckpointError, read_weights_file
from detr_ft.checkpoints.weight_layouts import QUERIES, to_our_state_dict
from detr_ft.model.classification import CLASS_HEAD, fit_class_head
from detr_ft.model.query_groups import fit_training_queries


@dataclass
class LoadReport:
    source_format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)
    form_change: str | None = None  # "softmax -> sigmoid" when the class head's form changed (it is re-initialised)
    queries: str | None = None  # how the query embeddings were fitted when the query counts differ
    training_queries: str | None = None  # how training-only queries absent from the weights were filled

    def summary(self) -> str:
        text = f"{self.source_format} checkpoint: {len(self.loaded)} tensors loaded"
        if self.reinitialized:
            text += f", re-initialised ({self.form_change or 'class count differs'}): {self.reinitialized}"
        for note in (self.queries, self.training_queries and f"training-only queries: {self.training_queries}"):
            text += f", {note}" if note else ""
        if self.missing:
            text += f", missing: {self.missing[:5]}{' ...' if len(self.missing) > 5 else ''}"
        if self.unexpected:
            text += f", unexpected: {self.unexpected[:5]}{' ...' if len(self.unexpected) > 5 else ''}"
        return text


def _fit_queries(saved: torch.Tensor, initial: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Query embeddings for another query count: the checkpoint's first min(Q_saved, Q_model) rows, then the
    model's own initial rows. Queries are interchangeable (the matcher assigns them): which ones stay is moot."""
    if saved.shape[1:] != initial.shape[1:]:
        return saved, ""  # another width: the shape check below names it
    kept = min(len(saved), len(initial))
    fitted = torch.cat([saved[:kept].to(initial.dtype), initial[kept:]])
    if len(initial) > len(saved):
        return fitted, f"queries {len(saved)} -> {len(initial)}: {kept} loaded, {len(initial) - kept} initialised"
    return fitted, f"queries {len(saved)} -> {len(initial)}: the first {kept} loaded, {len(saved) - kept} dropped"


def load_weights(
    model: nn.Module,
    weights: dict | str | Path,
    class_ids: list[int] | None = None,
    strict: bool = True,
    source: str | None = None,
    source_classification: str | None = None,
) -> LoadReport:
    """Load `weights` (a state dict in any supported layout, or the path of a plain weights file) into `model`
    and report what was loaded, missing, unexpected and re-initialised. `source` names the weights in errors.

    class_ids: class_ids[label] = row of the source class head to use for that label (a softmax head's
    no-object row, the last, is always kept); e.g. the official 92-row head, indexed by COCO category id, for a
    contiguous label set. Without it, a class head of another size is re-initialised, as is one of another form
    (source_classification: softmax | sigmoid, model/classification.py's fit_class_head).
    """
    if isinstance(weights, str | Path):
        source = source or str(weights)
        weights = read_weights_file(weights)
    source = source or "the given weights"
    source_format, state = to_our_state_dict(weights)
    # BatchNorm-trained weights (norm="batch") load into frozen BatchNorm; its step counter means nothing there.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    target = model.state_dict()
    report = LoadReport(source_format)
    dropped, report.form_change = fit_class_head(state, class_ids, source_classification, source_format, model)
    report.reinitialized = [key for key in dropped if key in target]
    for key in CLASS_HEAD:
        if key in state and key in target and state[key].shape != target[key].shape:
            del state[key]
            report.reinitialized.append(key)
    if QUERIES in state and QUERIES in target and state[QUERIES].shape != target[QUERIES].shape:
        state[QUERIES], report.queries = _fit_queries(state[QUERIES], target[QUERIES])
    state, report.training_queries = fit_training_queries(model, state)  # dropped, or filled from group 0
    for key, value in state.items():
        if key in target and value.shape != target[key].shape:
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(value.shape)} in the checkpoint but {tuple(target[key].shape)} "
                "in the model; the checkpoint was made for another architecture (check model=... and its settings)"
            )
    report.missing = sorted(
        k for k in set(target) - set(state) - set(report.reinitialized) if not k.endswith("num_batches_tracked")
    )
    report.unexpected = sorted(set(state) - set(target))
    if strict and (report.missing or report.unexpected):
        raise CheckpointError(
            f"{source} ({source_format}) does not fit this model: {len(report.missing)} missing keys "
            f"{report.missing[:4]}, {len(report.unexpected)} unexpected keys {report.unexpected[:4]}; "
            "it was made for another architecture (check model=... and its settings)"
        )
    usable = {k: v for k, v in state.items() if k in target}
    model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    return report
