"""`criterion=detr|focal|ia_bce|mal` (conf/criterion/): one choice sets the head's form for the model, the matcher
and the criterion; the default is the paper's recipe; `--help` lists the options."""

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from tests.conftest import compose_config, run_cli


def _built(tmp_path, *overrides: str):
    cfg = compose_config(list(overrides), tmp_path / "run", tmp_path / "cache")
    GlobalHydra.instance().clear()
    return cfg, instantiate(cfg.model, num_classes=3), instantiate(cfg.criterion, num_classes=3)


@pytest.mark.parametrize("model", ["detr_tiny", "detr_small", "detr_r18", "detr_r50", "detr_r101"])
def test_every_model_defaults_to_the_papers_softmax_recipe(tmp_path, model):
    cfg = compose_config([f"model={model}"], tmp_path / "run", tmp_path / "cache")
    GlobalHydra.instance().clear()
    criterion = cfg.criterion
    assert cfg.model.classification == criterion.classification == criterion.matcher.classification == "softmax"
    assert criterion.class_loss == "ce" and criterion.eos_coef == 0.1 and criterion.class_targets == "hard"
    assert dict(criterion.weights) == {"loss_ce": 1, "loss_bbox": 5, "loss_giou": 2}
    costs = (criterion.matcher.cost_class, criterion.matcher.cost_bbox, criterion.matcher.cost_giou)
    assert costs == (1, 5, 2)


@pytest.mark.parametrize("option, loss_ce", [("focal", 2), ("ia_bce", 1), ("mal", 1)])
def test_a_sigmoid_option_sets_the_form_the_loss_its_weights_and_the_focal_matching_costs(tmp_path, option, loss_ce):
    cfg, model, criterion = _built(tmp_path, f"criterion={option}")
    assert model.classification == criterion.classification == criterion.matcher.classification == "sigmoid"
    assert model.class_head.weight.shape[0] == 3 and criterion.class_loss == option
    assert criterion.weights == {"loss_ce": loss_ce, "loss_bbox": 5, "loss_giou": 2}
    assert (criterion.matcher.cost_class, criterion.matcher.cost_bbox, criterion.matcher.cost_giou) == (2, 5, 2)


def test_the_quickstart_takes_a_criterion_option_and_keeps_its_groups(tmp_path):
    cfg, model, criterion = _built(tmp_path, "experiment=quickstart", "criterion=ia_bce")
    assert model.training_queries.query_groups == 4
    assert criterion.classification == "sigmoid"


@pytest.mark.parametrize(
    "override, named",
    [
        ("criterion.classification=sigmoidal", ["criterion.classification", "['softmax', 'sigmoid']", "'sigmoidal'"]),
        ("model.classification=logistic", ["model.classification", "['softmax', 'sigmoid']", "'logistic'"]),
        ("criterion.class_loss=varifocal", ["criterion.class_loss='varifocal'", "['ce']"]),
    ],
)
def test_a_bad_value_stops_while_building_naming_the_key_and_what_is_valid(tmp_path, override, named):
    with pytest.raises(Exception) as error:  # hydra's InstantiationException, holding our ValueError's message
        _built(tmp_path, override)
    assert all(part in str(error.value) for part in named), str(error.value)


def test_help_lists_the_criterion_group(tmp_path):
    result = run_cli(["-m", "detr_ft", "--help"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and "criterion: detr, focal, ia_bce, mal" in result.stdout
