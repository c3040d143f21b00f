"""The head's form travels with a detr_ft checkpoint: a softmax one fine-tunes into a sigmoid model with its head
re-initialised (the run's tags say so), and a file whose head does not fit the form its config names is refused
by fine-tuning and by predict alike."""

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from detr_ft.checkpoints.initial_weights import load_starting_weights
from detr_ft.checkpoints.weight_layouts import CheckpointError
from detr_ft.data.categories import CategoryMap
from detr_ft.inference.detector import Detector
from tests.conftest import compose_config

NAMES = ["a", "b", "c"]
CATEGORIES = CategoryMap.from_coco_categories([{"id": i + 1, "name": name} for i, name in enumerate(NAMES)])


def _checkpoint(folder, *overrides: str, head_rows: int | None = None, seed: int = 1):
    """A detr_ft checkpoint of the tiny model as `overrides` configure it (optionally with a head of other rows)."""
    cfg = compose_config(list(overrides), folder / "run", folder / "cache")
    GlobalHydra.instance().clear()
    torch.manual_seed(seed)
    model = instantiate(cfg.model, num_classes=len(NAMES))
    state = model.state_dict()
    if head_rows is not None:
        state["class_head.weight"], state["class_head.bias"] = torch.zeros(head_rows, 64), torch.zeros(head_rows)
    path = folder / f"{len(list(folder.glob('*.ckpt')))}.ckpt"
    config = OmegaConf.to_yaml(cfg, resolve=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "detr_ft": _meta(config)}, path)
    return path, model, cfg


def _meta(config: str) -> dict:
    return {"config": config, "category_map": CATEGORIES.to_dict()}


def test_a_softmax_checkpoint_fine_tunes_into_a_sigmoid_model_with_a_new_head_and_says_so(tmp_path):
    path, source, _ = _checkpoint(tmp_path)
    _, target, _ = _checkpoint(tmp_path, "criterion=mal", seed=2)
    prior = target.class_head.bias.clone()
    assert not torch.equal(target.query_embed.weight, source.query_embed.weight)
    tags = load_starting_weights(target, path, NAMES)
    assert tags["class_head"] == "re-initialised" and tags["class_head_form"] == "softmax -> sigmoid"
    assert torch.equal(target.class_head.bias, prior)  # the prior 0.01, not the softmax head's rows
    assert torch.equal(target.query_embed.weight, source.query_embed.weight)


def test_a_sigmoid_checkpoint_fine_tunes_into_a_sigmoid_model_keeping_its_head(tmp_path):
    path, source, _ = _checkpoint(tmp_path, "criterion=focal")
    _, target, _ = _checkpoint(tmp_path, "criterion=ia_bce", seed=2)
    assert not torch.equal(target.class_head.weight, source.class_head.weight)
    tags = load_starting_weights(target, path, NAMES)
    assert tags["class_head"] == "loaded" and "class_head_form" not in tags
    assert torch.equal(target.class_head.weight, source.class_head.weight)


def test_a_head_that_does_not_fit_its_configs_form_is_refused_by_fine_tuning_and_predict(tmp_path):
    path, _, _ = _checkpoint(tmp_path, "criterion=focal", head_rows=len(NAMES) + 1)  # softmax rows, sigmoid config
    _, target, _ = _checkpoint(tmp_path, "criterion=focal")
    with pytest.raises(CheckpointError, match="does not fit the model.classification=sigmoid"):
        load_starting_weights(target, path, NAMES)
    with pytest.raises(CheckpointError, match="which is the softmax form.*model.classification=sigmoid"):
        Detector(path, device="cpu")


def test_predict_scores_a_sigmoid_checkpoint_in_the_sigmoid_form(tmp_path):
    path, model, _ = _checkpoint(tmp_path, "criterion=ia_bce")
    detector = Detector(path, device="cpu")
    assert detector.model.classification == "sigmoid"
    found = detector(torch.randint(0, 255, (3, 48, 64), dtype=torch.uint8))
    assert len(found["scores"]) == model.num_queries * len(NAMES)  # every (query, class) pair: fewer than 100
    assert ((found["scores"] > 0) & (found["scores"] < 1)).all() and set(found["labels"].tolist()) <= {0, 1, 2}
