"""DETR: a CNN backbone, a transformer, and N learned object queries each predicting one
(class, box) pair or "no object" (the class head's two forms: model/classification.py)."""

import torch
import torch.nn.functional as F
from torch import nn

from detr_ft.model.backbone import Backbone
from detr_ft.model.classification import check_form, class_head
from detr_ft.model.fast import MODES, apply_fast_kernels
from detr_ft.model.position import PositionEmbeddingSine
from detr_ft.model.query_groups import TrainingQueries, check_training_queries
from detr_ft.model.transformer import Transformer


class BoxHead(nn.Module):
    """3-layer perceptron with ReLU: decoder features [..., C] -> box logits [..., 4] (sigmoid applied by DETR)."""

    def __init__(self, d_model: int, num_layers: int = 3):
        super().__init__()
        sizes = [d_model] * num_layers + [4]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x) if index == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DETR(nn.Module):
    """Args: backbone and transformer (built parts), num_classes K (real classes; index K = no object),
    num_queries, aux_loss (also return every earlier decoder layer's predictions), fast_kernels ("auto": the
    speed paths of detr_ft.model.fast, same weights and state dict; "off": the plain PyTorch modules);
    training-only aids, off by default (model/query_groups.py): query_groups (Group DETR's K), one_to_many_queries
    (H-DETR's block) and query_groups_init (how weights without them fill them: copy | fresh); classification, the
    class head's form: softmax (K+1 logits, the paper's) or sigmoid (K logits, prior-initialised bias)."""

    def __init__(
        self,
        backbone: Backbone,
        transformer: Transformer,
        num_classes: int,
        num_queries: int = 100,
        aux_loss: bool = True,
        fast_kernels: str = "auto",
        query_groups: int = 1,
        one_to_many_queries: int = 0,
        query_groups_init: str = "fresh",
        classification: str = "softmax",
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if fast_kernels not in MODES:
            raise ValueError(f"model.fast_kernels must be one of {list(MODES)}, got {fast_kernels!r}")
        d_model = transformer.d_model
        self.backbone = backbone
        self.position = PositionEmbeddingSine(d_model // 2)
        self.input_proj = nn.Conv2d(backbone.num_channels, d_model, kernel_size=1)
        self.transformer = transformer
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.classification = check_form(
            classification, "model.classification (which follows criterion.classification)"
        )
        self.class_head = class_head(d_model, num_classes, classification)
        self.box_head = BoxHead(d_model)
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.aux_loss = aux_loss
        check_training_queries(num_queries, query_groups, one_to_many_queries, query_groups_init)
        self.training_queries = None
        if query_groups > 1 or one_to_many_queries:
            args = (num_queries, d_model, query_groups, one_to_many_queries, query_groups_init)
            self.training_queries = TrainingQueries(*args)
        if fast_kernels == "auto":
            apply_fast_kernels(self)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """images [B, 3, H, W] (padded), mask [B, H, W] True on padding (None: no padding) ->
        pred_logits [B, Q, K+1] (softmax) or [B, Q, K] (sigmoid), pred_boxes [B, Q, 4] (cx, cy, w, h in [0, 1] of
        the unpadded image), aux_outputs: one such dict per earlier decoder layer (when aux_loss)."""
        if mask is None:
            mask = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        return self.forward_from_features(*self.backbone(images, mask))

    def forward_from_features(self, features: torch.Tensor, feature_mask: torch.Tensor) -> dict:
        """The rest of forward() after the backbone: features [B, C, h, w] and feature_mask [B, h, w] as the
        backbone returns them -> the same outputs as forward."""
        pos = self.position(feature_mask).to(features.dtype)
        queries, blocks = self.query_embed.weight, None
        if self.training and self.training_queries is not None:  # evaluation runs group 0 alone: the paper's graph
            queries, blocks = self.training_queries.queries(queries)
        decoded = self.transformer(self.input_proj(features), feature_mask, queries, pos, query_blocks=blocks)
        # The heads run in the weights' precision even under autocast: box coordinates in bf16 would be off by
        # up to 2 px at 512 px, and the heads cost little.
        with torch.autocast(decoded.device.type, enabled=False):
            decoded = decoded.to(self.class_head.weight.dtype)
            logits = self.class_head(decoded)  # [L, B, Q, K+1] or [L, B, Q, K]
            boxes = self.box_head(decoded).sigmoid()
        if blocks is not None:
            return self.training_queries.split_outputs(logits, boxes, self.aux_loss)
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.aux_loss:
            out["aux_outputs"] = [
                {"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1], strict=True)
            ]
        return out

    # ---- what the fine-tuning strategies call ----
    def freeze_backbone(self) -> None:
        self.backbone.freeze()

    def unfreeze_backbone(self, stages: list[str] | None = None) -> None:
        self.backbone.unfreeze(stages)

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything outside the backbone: input projection, transformer, queries, class and box heads."""
        backbone = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in backbone]
