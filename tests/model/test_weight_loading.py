"""load_weights: the official DETR layout, the Hugging Face layout, our Lightning checkpoints, class-head
re-initialisation and row selection, shape errors, and the refusal of pickled code."""

import re

import pytest
import torch

from detr_ft.model.checkpoints import CheckpointError, load_weights
from tests.model.helpers import tiny_detr


def _official_layout(state: dict) -> dict:
    """Our key names -> the official repository's (backbone.0.body., class_embed, bbox_embed)."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("backbone.body.", "backbone.0.body.")
        key = key.replace("class_head.", "class_embed.").replace("box_head.", "bbox_embed.")
        renamed[key] = value
    return renamed


_HF_NAMES = {
    "encoder": {"norm1": "self_attn_layer_norm", "linear1": "fc1", "linear2": "fc2", "norm2": "final_layer_norm"},
    "decoder": {
        "norm1": "self_attn_layer_norm",
        "norm2": "encoder_attn_layer_norm",
        "linear1": "fc1",
        "linear2": "fc2",
        "norm3": "final_layer_norm",
    },
}


def _huggingface_layout(state: dict) -> dict:
    """Our key names -> Hugging Face DetrForObjectDetection's (timm backbone, separate q/k/v projections)."""
    out = {}
    for key, value in state.items():
        if key.startswith("backbone.body."):
            out["model.backbone.conv_encoder.model." + key.removeprefix("backbone.body.")] = value
            continue
        match = re.match(r"transformer\.(encoder|decoder)\.layers\.(\d+)\.(self_attn|multihead_attn)\.(.+)$", key)
        if match:
            part, index, attention, rest = match.groups()
            prefix = f"model.{part}.layers.{index}.{'self_attn' if attention == 'self_attn' else 'encoder_attn'}"
            if rest.startswith("in_proj_"):
                kind = rest.removeprefix("in_proj_")
                for name, chunk in zip("qkv", value.chunk(3), strict=True):
                    out[f"{prefix}.{name}_proj.{kind}"] = chunk
            else:
                out[f"{prefix}.{rest}"] = value
            continue
        match = re.match(r"transformer\.(encoder|decoder)\.layers\.(\d+)\.(\w+)\.(weight|bias)$", key)
        if match:
            out[f"model.{match[1]}.layers.{match[2]}.{_HF_NAMES[match[1]][match[3]]}.{match[4]}"] = value
            continue
        for ours, theirs in [
            ("transformer.decoder.norm.", "model.decoder.layernorm."),
            ("input_proj.", "model.input_projection."),
            ("query_embed.", "model.query_position_embeddings."),
            ("class_head.", "class_labels_classifier."),
            ("box_head.", "bbox_predictor."),
        ]:
            if key.startswith(ours):
                out[theirs + key.removeprefix(ours)] = value
                break
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


def _same_outputs(a, b) -> bool:
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out_a, out_b = a.eval()(images), b.eval()(images)
    return torch.allclose(out_a["pred_logits"], out_b["pred_logits"]) and torch.allclose(
        out_a["pred_boxes"], out_b["pred_boxes"]
    )


def test_official_layout_loads_with_nothing_missing(tmp_path):
    source = tiny_detr()
    path = tmp_path / "detr-official.pth"
    torch.save({"model": _official_layout(source.state_dict())}, path)
    target = tiny_detr()
    torch.nn.init.zeros_(target.class_head.weight)
    report = load_weights(target, path)
    assert report.source_format == "official"
    assert not report.missing and not report.unexpected and not report.reinitialized
    assert _same_outputs(source, target)


def test_huggingface_layout_maps_fully(tmp_path):
    source = tiny_detr()
    path = tmp_path / "pytorch_model.bin"
    torch.save(_huggingface_layout(source.state_dict()), path)
    target = tiny_detr()
    torch.nn.init.zeros_(target.class_head.weight)
    report = load_weights(target, path)
    assert report.source_format == "huggingface" and not report.missing and not report.unexpected
    assert _same_outputs(source, target)


def test_huggingface_safetensors(tmp_path):
    from safetensors.torch import save_file

    source = tiny_detr()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in _huggingface_layout(source.state_dict()).items()}, str(path))
    assert load_weights(tiny_detr(), path).source_format == "huggingface"


def test_another_class_count_reinitialises_only_the_class_head(tmp_path):
    path = tmp_path / "five_classes.pth"
    source = tiny_detr(num_classes=5)
    torch.save({"model": _official_layout(source.state_dict())}, path)
    target = tiny_detr(num_classes=3)
    report = load_weights(target, path)
    assert sorted(report.reinitialized) == ["class_head.bias", "class_head.weight"]
    assert torch.equal(target.box_head.layers[0].weight, source.box_head.layers[0].weight)


def test_class_ids_select_rows_of_the_source_head(tmp_path):
    # As the official 92-row head indexed by COCO category id, used for a contiguous label set.
    path = tmp_path / "by_category_id.pth"
    source = tiny_detr(num_classes=6)
    torch.save({"model": _official_layout(source.state_dict())}, path)
    target = tiny_detr(num_classes=2)
    report = load_weights(target, path, class_ids=[4, 1])
    assert not report.reinitialized
    expected = source.class_head.weight[[4, 1, 6]]  # the two classes, then no-object (the last row)
    assert torch.equal(target.class_head.weight, expected)


def test_other_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    path = tmp_path / "wider.pth"
    wider = tiny_detr()
    state = _official_layout(wider.state_dict())
    state["query_embed.weight"] = torch.zeros(6, 48)
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"query_embed.weight.*\(6, 48\).*\(6, 32\)"):
        load_weights(tiny_detr(), path)


def test_missing_and_unexpected_keys_fail_in_strict_mode(tmp_path):
    path = tmp_path / "partial.pth"
    state = _official_layout(tiny_detr().state_dict())
    del state["query_embed.weight"]
    state["something.else"] = torch.zeros(1)
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="partial.pth.*1 missing keys.*query_embed.weight"):
        load_weights(tiny_detr(), path)
    report = load_weights(tiny_detr(), path, strict=False)
    assert report.missing == ["query_embed.weight"] and report.unexpected == ["something.else"]


class NotATensor:  # a class the loader would have to import and run to unpickle
    pass


def test_a_file_that_needs_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="refused to load .*evil.pth"):
        load_weights(tiny_detr(), path)


def test_official_training_checkpoint_with_argparse_namespace_loads(tmp_path):
    import argparse

    path = tmp_path / "checkpoint.pth"
    state = _official_layout(tiny_detr().state_dict())
    torch.save({"model": state, "args": argparse.Namespace(lr=1e-4), "epoch": 3}, path)
    assert load_weights(tiny_detr(), path).source_format == "official"
