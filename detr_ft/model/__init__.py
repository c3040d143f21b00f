"""The DETR model in plain PyTorch (no Lightning, Hydra or MLflow): usable from a notebook."""

from detr_ft.model.backbone import Backbone
from detr_ft.model.detr import DETR
from detr_ft.model.loss.criterion import SetCriterion
from detr_ft.model.loss.matcher import HungarianMatcher
from detr_ft.model.position import PositionEmbeddingSine
from detr_ft.model.transformer import Transformer

__all__ = ["DETR", "Backbone", "Transformer", "PositionEmbeddingSine", "HungarianMatcher", "SetCriterion"]
