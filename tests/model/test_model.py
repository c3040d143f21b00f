"""The DETR module: output contract, padding invariance, and which parameters can receive gradients."""

import pytest
import torch

from tests.model.helpers import criterion, random_targets, tiny_detr


def test_output_shapes_and_box_range():
    model = tiny_detr(num_classes=3).eval()
    out = model(torch.randn(2, 3, 64, 80))
    assert out["pred_logits"].shape == (2, 6, 4)  # K + 1 classes, the last is "no object"
    assert out["pred_boxes"].shape == (2, 6, 4)
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    assert len(out["aux_outputs"]) == 1  # one per earlier decoder layer
    assert "aux_outputs" not in tiny_detr(aux_loss=False).eval()(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("normalize_before", [False, True])
def test_a_padded_image_gives_the_same_predictions_as_unpadded(normalize_before):
    model = tiny_detr(normalize_before=normalize_before).eval()
    model.backbone.zero_padding = True  # the paper's backbone leaks padding into border features
    image = torch.randn(1, 3, 64, 96)
    padded = torch.zeros(1, 3, 96, 128)
    padded[:, :, :64, :96] = image
    mask = torch.ones(1, 96, 128, dtype=torch.bool)
    mask[:, :64, :96] = False
    with torch.no_grad():
        alone, in_batch = model(image), model(padded, mask)
    # Feature-map resolution differs at the padding border, so compare at a realistic tolerance.
    assert torch.allclose(alone["pred_logits"], in_batch["pred_logits"], atol=1e-4)
    assert torch.allclose(alone["pred_boxes"], in_batch["pred_boxes"], atol=1e-4)


# The decoder starts from zeros, so at initialisation its first self-attention sees all-zero values and
# outputs a constant (its zero biases), and the LayerNorm after it normalises a constant: these weights get
# exact zero gradients on the first step, in the paper's model too (they train once biases move).
ZERO_GRAD_AT_INIT = {
    "transformer.decoder.layers.0.self_attn.in_proj_weight",
    "transformer.decoder.layers.0.self_attn.out_proj.weight",
    "transformer.decoder.layers.0.norm1.weight",
}


def _grads_after_step(model):
    model.train()
    images = torch.randn(2, 3, 64, 64)
    losses = criterion()(
        model(images),
        random_targets(2, seed=3)
        if any(len(t["labels"]) for t in random_targets(2, seed=3))
        else random_targets(2, seed=4),
    )
    losses["loss"].backward()
    return {name: p.grad is not None and p.grad.abs().sum() > 0 for name, p in model.named_parameters()}


def test_gradients_reach_every_trainable_parameter_and_never_stem_or_layer1():
    model = tiny_detr()
    grads = _grads_after_step(model)
    exempt = ZERO_GRAD_AT_INIT
    for name, has_grad in grads.items():
        if name.startswith(("backbone.body.conv1", "backbone.body.bn1", "backbone.body.layer1")):
            assert not has_grad, name
        elif name not in exempt:
            assert has_grad, name


def test_frozen_backbone_gets_no_gradients_and_builds_no_graph():
    model = tiny_detr()
    model.freeze_backbone()
    assert model.backbone.is_frozen
    grads = _grads_after_step(model)
    assert not any(has for name, has in grads.items() if name.startswith("backbone."))
    assert all(has for name, has in grads.items() if not name.startswith("backbone.") and name not in ZERO_GRAD_AT_INIT)
    features, _ = model.backbone(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.bool))
    assert features.grad_fn is None  # no activations kept for backward


def test_gradual_unfreeze_trains_only_the_named_stage():
    model = tiny_detr()
    model.freeze_backbone()
    model.unfreeze_backbone(["layer3"])
    assert model.backbone.unfrozen_stages == ["layer3"]
    grads = _grads_after_step(model)
    assert any(has for name, has in grads.items() if name.startswith("backbone.body.layer3"))
    assert not any(has for name, has in grads.items() if name.startswith("backbone.body.layer2"))


def test_unfreezing_a_stage_that_may_never_train_is_an_error():
    with pytest.raises(ValueError, match="layer1"):
        tiny_detr().unfreeze_backbone(["layer1"])


def test_parameter_groups_partition_the_trainable_model():
    model = tiny_detr()
    stages = model.backbone.trainable_stages
    backbone = {id(p) for stage in stages for p in model.backbone.stage_parameters(stage)}
    head = {id(p) for p in model.head_parameters()}
    assert not backbone & head
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == backbone | head
