"""load_weights beyond the layouts (tests/checkpoints/test_peer_checkpoints.py proves those with files the real peers
wrote): class-head re-initialisation and row selection, shape errors, strictness, and the refusal of pickled code."""

import pytest
import torch

from detr_ft.checkpoints.safe_read import CheckpointError
from detr_ft.checkpoints.weight_loading import load_weights
from tests.model.helpers import tiny_detr


def _official_layout(state: dict) -> dict:
    """Our key names -> the official repository's (backbone.0.body., class_embed, bbox_embed)."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("backbone.body.", "backbone.0.body.")
        key = key.replace("class_head.", "class_embed.").replace("box_head.", "bbox_embed.")
        renamed[key] = value
    return renamed


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


@pytest.mark.parametrize("saved_queries, model_queries", [(6, 9), (6, 4)])
def test_another_query_count_keeps_the_saved_queries_and_initialises_or_drops_the_rest(saved_queries, model_queries):
    source = tiny_detr()
    assert source.num_queries == saved_queries
    target = tiny_detr()
    target.query_embed = torch.nn.Embedding(model_queries, source.query_embed.embedding_dim)
    initial = target.query_embed.weight.detach().clone()
    report = load_weights(target, source.state_dict())
    kept = min(saved_queries, model_queries)
    assert torch.equal(target.query_embed.weight[:kept], source.query_embed.weight[:kept])
    assert torch.equal(target.query_embed.weight[kept:], initial[kept:])  # the added ones keep their fresh init
    assert "query_embed.weight" in report.loaded and not report.reinitialized
    assert f"queries {saved_queries} -> {model_queries}" in report.summary()
    assert torch.equal(target.box_head.layers[0].weight, source.box_head.layers[0].weight)
