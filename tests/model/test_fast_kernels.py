"""model.fast_kernels: `off` builds the plain PyTorch modules, `auto` turns them into detr_ft.model.fast's in
place; both have the same state dict and compute the same outputs (auto within float rounding)."""

import pytest
import torch
from hydra.utils import instantiate
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from detr_ft.model import DETR, Backbone, Transformer
from detr_ft.model.fast import apply_fast_kernels


def _detr(fast_kernels: str, zero_padding: bool = False) -> DETR:
    torch.manual_seed(0)
    stages = ["layer2", "layer3", "layer4"]
    backbone = Backbone("resnet50", stages, blocks_per_stage=[1, 1, 1, 1], zero_padding=zero_padding)
    transformer = Transformer(32, 4, 1, 2, 64, dropout=0.0)
    return DETR(backbone, transformer, num_classes=3, num_queries=5, fast_kernels=fast_kernels)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 96, 128, dtype=torch.bool)
    mask[1, 64:, :] = True
    mask[1, :, 80:] = True
    return images, mask


def _randomise_norms(model: nn.Module) -> None:
    """Norm statistics far from their 1/0 defaults, so a wrongly folded norm would show."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if buffer.is_floating_point():
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + (0.5 if "var" in name else -0.5))


def test_off_builds_only_plain_modules_and_auto_only_changes_their_classes():
    plain, fast = _detr("off"), _detr("auto")
    fast_classes = {type(m) for m in fast.modules()} - {type(m) for m in plain.modules()}
    assert not any(type(m).__module__.startswith("detr_ft.model.fast") for m in plain.modules())
    assert {c.__module__ for c in fast_classes} == {
        "detr_ft.model.fast.backbone",
        "detr_ft.model.fast.folding",
        "detr_ft.model.fast.attention",
        "detr_ft.model.fast.dropout",
    }
    plain_state, fast_state = plain.state_dict(), fast.state_dict()
    assert list(plain_state) == list(fast_state)
    assert all(torch.equal(plain_state[k], fast_state[k]) for k in plain_state)
    assert [n for n, _ in plain.named_modules()] == [n for n, _ in fast.named_modules()]


def test_applying_twice_changes_nothing_more():
    model = _detr("auto")
    before = [type(m) for m in model.modules()]
    apply_fast_kernels(model)
    assert [type(m) for m in model.modules()] == before


@pytest.mark.parametrize("zero_padding", [False, True])
def test_auto_computes_what_off_computes(zero_padding):
    plain, fast = _detr("off", zero_padding).eval(), _detr("auto", zero_padding).eval()
    _randomise_norms(plain)
    fast.load_state_dict(plain.state_dict())
    images, mask = _batch()
    with torch.no_grad():
        expected, got = plain(images, mask), fast(images, mask)
    for key in ("pred_logits", "pred_boxes"):
        assert (got[key] - expected[key]).abs().max() <= 1e-5, key
    # The two images (one padded) are predicted differently: outputs that ignored their input would not show.
    assert (expected["pred_logits"][0] - expected["pred_logits"][1]).abs().max() > 1e-3


def test_off_backbone_is_torchvisions_resnet_with_frozen_batchnorm_exactly():
    """The plain backbone (zero_padding=false, as the paper's) is the official DETR's: torchvision's ResNet with
    FrozenBatchNorm2d read at its last stage, its mask resized by nearest interpolation; equal to 0.0."""
    backbone = _detr("off").backbone.eval()
    _randomise_norms(backbone)
    assert all(type(m) is FrozenBatchNorm2d for m in backbone.body.modules() if "Norm" in type(m).__name__)
    assert all(type(m) is nn.Conv2d for m in backbone.body.modules() if "Conv" in type(m).__name__)
    reference = IntermediateLayerGetter(backbone.body, {"layer4": "0"})
    images, mask = _batch()
    with torch.no_grad():
        features, feature_mask = backbone(images, mask)
        expected = reference(images)["0"]
    assert torch.equal(features, expected)
    expected_mask = nn.functional.interpolate(mask[None].float(), size=expected.shape[-2:]).to(torch.bool)[0]
    assert torch.equal(feature_mask, expected_mask)


def test_training_steps_give_the_same_gradients_either_way():
    plain, fast = _detr("off").train(), _detr("auto").train()
    images, mask = _batch()
    for model in (plain, fast):
        out = model(images, mask)
        (out["pred_logits"].square().mean() + out["pred_boxes"].mean()).backward()
    fast_grads = dict(fast.named_parameters())
    for name, parameter in plain.named_parameters():
        if parameter.grad is not None:
            scale = max(parameter.grad.abs().max().item(), 1e-6)
            assert (fast_grads[name].grad - parameter.grad).abs().max() <= 1e-3 * scale, name


def test_the_config_key_reaches_the_model(tiny_cfg):
    for mode, fast in (("off", False), ("auto", True)):
        cfg = tiny_cfg(f"model.fast_kernels={mode}")
        model = instantiate(cfg.model, num_classes=2)
        assert any(type(m).__module__.startswith("detr_ft.model.fast") for m in model.modules()) is fast


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="model.fast_kernels"):
        _detr("on")
