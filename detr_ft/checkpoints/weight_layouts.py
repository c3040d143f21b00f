"""Weights users already have, as plain state dicts, into our DETR:

- our own key names (`backbone.body.layer1.0.conv1.weight`, `class_head.weight`, ...);
- the official DETR release's (`detr-r50-e632da11.pth` holds {"model": state_dict}; training files add `args`);
- Hugging Face DETR's (`pytorch_model.bin` / `model.safetensors`, timm or HF ResNet backbone).

Weight layouts, not training files: detr_ft's `.ckpt` is read by `detr_ft.checkpoints.checkpoint_file`, which hands
its model state dict here. Files load with `torch.load(weights_only=True)`: pickled code is refused, never run."""

import re

import torch

from detr_ft.checkpoints.safe_read import CheckpointError

QUERIES = "query_embed.weight"  # [num_queries, d_model]: one learned embedding per object query


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
