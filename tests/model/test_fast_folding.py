"""Frozen BatchNorm folded into the convolution before it: same features, and a stage that unfreezes trains its
real (unfolded) weights."""

import torch

from detr_ft.model import Backbone
from detr_ft.model.fast import apply_fast_kernels
from detr_ft.model.fast.folding import FoldingConv2d


def _backbone() -> Backbone:
    torch.manual_seed(0)
    backbone = apply_fast_kernels(Backbone("resnet50", blocks_per_stage=[1, 1, 1, 1], zero_padding=True))
    # Norm statistics far from the 1/0 defaults, so folding them wrongly would show.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buffer in backbone.named_buffers():
            if buffer.is_floating_point():
                noise = torch.rand(buffer.shape, generator=generator)
                buffer.copy_(noise + 0.5 if name.endswith(("running_var", "weight")) else noise - 0.5)
    return backbone


def _inputs():
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[1, :, 40:] = True
    return images, mask


def _unfolded(backbone: Backbone, images, mask) -> torch.Tensor:
    """The same weights in a backbone that never folds: ordinary BatchNorm in eval mode (same statistics, same
    eps) after each convolution."""
    reference = Backbone("resnet50", blocks_per_stage=[1, 1, 1, 1], zero_padding=True, norm="batch").eval()
    missing, unexpected = reference.load_state_dict(backbone.state_dict(), strict=False)
    assert not unexpected and all(key.endswith("num_batches_tracked") for key in missing)
    with torch.no_grad():
        return reference(images, mask)[0]


def test_every_convolution_with_a_frozen_norm_folds():
    backbone = _backbone()
    convolutions = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(isinstance(m, FoldingConv2d) for m in convolutions)


def test_folded_backbone_equals_unfolded():
    backbone = _backbone().eval()
    images, mask = _inputs()
    with torch.no_grad():
        folded = backbone(images, mask)[0]
    reference = _unfolded(backbone, images, mask)
    assert (folded - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item())


def test_state_dict_keys_and_values_are_unchanged_by_folding():
    backbone = _backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with torch.no_grad():
        backbone(*_inputs())
    after = backbone.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert "body.layer1.0.bn1.running_var" in after and "body.layer1.0.conv1.weight" in after


def test_a_stage_that_unfreezes_trains_its_real_weights_and_refolds_after_a_step():
    backbone = _backbone().train()
    backbone.freeze()
    images, mask = _inputs()
    backbone(images, mask)  # everything folded (and cached)
    backbone.unfreeze(["layer4"])
    features = backbone(images, mask)[0]
    features.square().mean().backward()
    conv = backbone.body.layer4[0].conv1
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert backbone.body.layer3[0].conv1.weight.grad is None  # still frozen, still folded
    # The gradient is the unfolded network's: compare with ordinary BatchNorm (eval) on the same weights.
    reference = Backbone("resnet50", blocks_per_stage=[1, 1, 1, 1], zero_padding=True, norm="batch").eval()
    reference.load_state_dict(_backbone().state_dict(), strict=False)
    reference(images, mask)[0].square().mean().backward()
    assert torch.allclose(conv.weight.grad, reference.body.layer4[0].conv1.weight.grad, rtol=1e-4, atol=1e-6)
    # A step changes the weights in place; freezing again folds the new weights, not a stale copy.
    with torch.no_grad():
        for parameter in backbone.stage_parameters("layer4"):
            if parameter.grad is not None:
                parameter -= 0.05 * parameter.grad.sign()
    backbone.freeze()
    with torch.no_grad():
        folded = backbone(images, mask)[0]
    assert (folded - _unfolded(backbone, images, mask)).abs().max() <= 1e-5 * max(1.0, folded.abs().max().item())


def test_loading_weights_after_a_forward_refolds():
    backbone, other = _backbone().eval(), Backbone("resnet50", blocks_per_stage=[1, 1, 1, 1], zero_padding=True)
    other.eval()
    images, mask = _inputs()
    with torch.no_grad():
        backbone(images, mask)  # caches the folded weights
        backbone.load_state_dict(other.state_dict())
        folded = backbone(images, mask)[0]
    other.eval()
    assert (folded - _unfolded(other, images, mask)).abs().max() <= 1e-5 * max(1.0, folded.abs().max().item())


def test_validation_between_fused_adamw_steps_folds_the_current_weights():
    # Fused AdamW updates weights in place without bumping their version counters: a fold cached by version
    # would validate a trained stage with its weights from before training (seen as a DDP val/mAP mismatch).
    backbone = _backbone().train()
    backbone.freeze()
    images, mask = _inputs()
    with torch.no_grad():
        backbone(images, mask)  # validation while frozen: folded from the initial weights
    backbone.unfreeze(["layer4"])
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=0.05, fused=True)
    backbone(images, mask)[0].square().mean().backward()
    optimizer.step()
    with torch.no_grad():
        folded = backbone(images, mask)[0]
    assert (folded - _unfolded(backbone, images, mask)).abs().max() <= 1e-5 * max(1.0, folded.abs().max().item())


def test_a_training_stage_folds_with_the_gradients_of_the_separate_norm():
    """Training through conv(x, W * scale) + shift gives the weights the gradient conv-then-norm gives them."""
    backbone = _backbone().train()
    backbone.unfreeze()
    reference = Backbone("resnet50", blocks_per_stage=[1, 1, 1, 1], zero_padding=True, norm="batch")
    reference.load_state_dict(backbone.state_dict(), strict=False)
    reference.eval()  # BatchNorm with fixed statistics: the frozen norm, unfolded
    reference.unfreeze()
    images, mask = _inputs()
    backbone(images, mask)[0].square().mean().backward()
    reference(images, mask)[0].square().mean().backward()
    ours = dict(backbone.named_parameters())
    compared = 0
    for name, theirs in reference.named_parameters():
        if name in ours and ours[name].grad is not None:
            scale = theirs.grad.abs().max().item()
            assert (ours[name].grad - theirs.grad).abs().max() <= 1e-4 * scale, name
            compared += 1
    assert compared >= 10  # every weight of layer2-4 (1 block each: 3 or 4 convolutions per stage)


def test_channels_last_activations_give_the_same_features():
    backbone = _backbone().eval()
    images, mask = _inputs()
    with torch.no_grad():
        features = backbone(images, mask)[0]  # on the CPU the backbone turns its input channels-last
        contiguous = backbone.body.layer1(backbone.body.maxpool(backbone.body.relu(backbone.body.conv1(images))))
        channels_last = backbone.body.layer1(
            backbone.body.maxpool(backbone.body.relu(backbone.body.conv1(images.to(memory_format=torch.channels_last))))
        )
    assert features.is_contiguous()  # channels-last inside, the usual layout out (a feature cache stores that)
    assert (contiguous - channels_last).abs().max() <= 1e-5 * contiguous.abs().max()
