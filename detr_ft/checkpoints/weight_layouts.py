"""Weights users already have, as plain state dicts, into our DETR:

- our own key names (`backbone.body.layer1.0.conv1.weight`, `class_head.weight`, ...);
- the official DETR release's (`detr-r50-e632da11.pth` holds {"model": state_dict}; training files add `args`);
- Hugging Face DETR's (`pytorch_model.bin` / `model.safetensors`, timm or HF ResNet backbone).

Weight layouts, not training files: detr_ft's `.ckpt` is read by `detr_ft.checkpoints.checkpoint_file`, which hands
its model state dict here. Files load with `torch.load(weights_only=True)`: pickled code is refused, never run."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detr_ft.checkpoints.safe_read import CheckpointError, read_weights_file
from detr_ft.model.classification import CLASS_HEAD, fit_class_head
from detr_ft.model.query_groups import fit_training_queries

QUERIES = "query_embed.weight"  # [num_queries, d_model]: one learned embedding per object query


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


def _from_official(state: dict) -> dict:
    renames = [
        (r"^backbone\.0\.body\.", "backbone.body."),
        (r"^class_embed\.", "class_head."),
        (r"^bbox_embed\.", "box_head."),
    ]
    out = {}
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


_HF_RESNET = [  # Hugging Face's own ResNet backbone naming -> torchvision's
    (r"embedder\.embedder\.convolution\.", "conv1."),
    (r"embedder\.embedder\.normalization\.", "bn1."),
    (
        r"encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.",
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0.",
    ),
    (
        r"encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.",
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1.",
    ),
    (
        r"encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.",
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}.",
    ),
    (
        r"encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.",
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}.",
    ),
]
_HF_LAYER = {
    "encoder": {"self_attn_layer_norm": "norm1", "fc1": "linear1", "fc2": "linear2", "final_layer_norm": "norm2"},
    "decoder": {
        "self_attn_layer_norm": "norm1",
        "encoder_attn_layer_norm": "norm2",
        "fc1": "linear1",
        "fc2": "linear2",
        "final_layer_norm": "norm3",
    },
}


def _from_huggingface(state: dict) -> dict:
    state = {key.removeprefix("model."): value for key, value in state.items()}
    out, qkv = {}, {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith("backbone.conv_encoder.model."):
            name = key.removeprefix("backbone.conv_encoder.model.")
            for pattern, replacement in _HF_RESNET:
                name = re.sub(pattern, replacement, name)
            out["backbone.body." + name] = value
            continue
        match = re.match(
            r"^(encoder|decoder)\.layers\.(\d+)\.(self_attn|encoder_attn)\.(q|k|v|out)_proj\.(weight|bias)$", key
        )
        if match:
            part, index, attention, projection, kind = match.groups()
            ours = f"transformer.{part}.layers.{index}.{'self_attn' if attention == 'self_attn' else 'multihead_attn'}"
            if projection == "out":
                out[f"{ours}.out_proj.{kind}"] = value
            else:
                qkv.setdefault(f"{ours}.in_proj_{kind}", {})[projection] = value
            continue
        match = re.match(r"^(encoder|decoder)\.layers\.(\d+)\.(\w+)\.(weight|bias)$", key)
        if match and match[3] in _HF_LAYER[match[1]]:
            out[f"transformer.{match[1]}.layers.{match[2]}.{_HF_LAYER[match[1]][match[3]]}.{match[4]}"] = value
            continue
        simple = {
            "decoder.layernorm.": "transformer.decoder.norm.",
            "input_projection.": "input_proj.",
            "query_position_embeddings.": "query_embed.",
            "class_labels_classifier.": "class_head.",
            "bbox_predictor.": "box_head.",
        }
        for prefix, replacement in simple.items():
            if key.startswith(prefix):
                out[replacement + key.removeprefix(prefix)] = value
                break
        else:
            out[key] = value  # reported as unexpected unless it matches one of ours
    for key, parts in qkv.items():  # our attention keeps q, k and v in one projection, in that order
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def to_our_state_dict(state: dict) -> tuple[str, dict]:
    """Recognise a state dict's layout -> (format name, the same tensors under our key names)."""
    if "model" in state and isinstance(state["model"], dict):
        return "official", _from_official(state["model"])
    if any("class_labels_classifier" in key for key in state):
        return "huggingface", _from_huggingface(state)
    if any(key.startswith("class_embed.") for key in state):
        return "official", _from_official(state)
    if any(key.startswith("class_head.") for key in state):
        return "detr_ft", dict(state)
    raise CheckpointError(
        "unrecognised weight layout (expected a detr_ft .ckpt, an official DETR .pth or a Hugging Face DETR "
        f"file); its first keys are {list(state)[:5]}"
    )


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
