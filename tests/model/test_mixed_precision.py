"""Under bf16 autocast the network runs in bf16 but the matcher, the loss and the box arithmetic stay fp32."""

import torch

from tests.model.helpers import criterion, random_targets, tiny_detr


def test_bf16_autocast_keeps_loss_and_matching_fp32_and_close_to_fp32():
    model = tiny_detr().train()
    loss_fn = criterion()
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    targets = random_targets(2, seed=4)
    targets[0] = {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.2, 0.2]])}
    costs = []
    original = loss_fn.matcher._cost

    def record(*args):
        costs.append((tuple(a.dtype for a in args), original(*args).dtype))
        return original(*args)

    loss_fn.matcher._cost = record
    reference = loss_fn(model(images), targets)["loss"]
    costs.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(images)
        projected_dtype = model.input_proj(model.backbone(images, torch.zeros(2, 64, 64, dtype=torch.bool))[0]).dtype
        losses = loss_fn(outputs, targets)
    assert projected_dtype == torch.bfloat16  # autocast really ran the network in bf16
    assert outputs["pred_boxes"].dtype == outputs["pred_logits"].dtype == torch.float32
    assert costs and all(dtype == torch.float32 for inputs, out in costs for dtype in (*inputs[:2], inputs[3], out))
    assert all(value.dtype == torch.float32 for value in losses.values())
    assert torch.isfinite(losses["loss"])
    assert abs(losses["loss"].item() - reference.item()) <= 0.05 * abs(reference.item())
    losses["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
