"""The optimizer steps all parameters in one fused AdamW kernel (under mixed precision the multi-tensor one, which
Lightning lets clip: tests/training/test_recipe.py's precision test trains bf16-mixed with clipping)."""

import torch

from detr_ft.training.loop.lr_schedule import LearningRateSchedule
from detr_ft.training.loop.module import DetrModule
from tests.model.helpers import criterion, tiny_detr


def test_adamw_is_fused_outside_a_trainer():
    module = DetrModule(tiny_detr(), criterion(), 1e-4, 1e-5, 1e-4, LearningRateSchedule())
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
