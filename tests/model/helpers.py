"""Small builders shared by the model tests: a tiny DETR and random targets."""

import torch

from detr_ft.model import DETR, Backbone, HungarianMatcher, SetCriterion, Transformer


def tiny_detr(num_classes: int = 3, aux_loss: bool = True, normalize_before: bool = False) -> DETR:
    torch.manual_seed(0)
    backbone = Backbone("resnet18", ["layer2", "layer3"], blocks_per_stage=[1, 1, 1, 1], last_stage="layer3")
    transformer = Transformer(32, 4, 1, 2, 64, dropout=0.0, normalize_before=normalize_before)
    return DETR(backbone, transformer, num_classes=num_classes, num_queries=6, aux_loss=aux_loss)


def criterion(num_classes: int = 3) -> SetCriterion:
    return SetCriterion(num_classes, HungarianMatcher(1, 5, 2))


def random_targets(batch: int, num_classes: int = 3, max_boxes: int = 3, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        n = int(torch.randint(0, max_boxes + 1, (1,), generator=generator))
        centres = torch.rand(n, 2, generator=generator) * 0.6 + 0.2
        sizes = torch.rand(n, 2, generator=generator) * 0.3 + 0.05
        targets.append(
            {
                "labels": torch.randint(0, num_classes, (n,), generator=generator),
                "boxes": torch.cat([centres, sizes], dim=1),
            }
        )
    return targets
