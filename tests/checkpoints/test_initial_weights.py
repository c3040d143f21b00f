"""Where fine-tuning weights come from, and every bad-checkpoint case failing before training."""

import pytest
import torch

from detr_ft.checkpoints import checkpoint_file
from detr_ft.checkpoints.weight_layouts import CheckpointError
from detr_ft.train import train


def test_missing_checkpoint_fails_before_any_data_is_read(tiny_cfg, tmp_path):
    cfg = tiny_cfg(f"train.checkpoint_path={tmp_path}/nope.ckpt", f"data.cache_dir={tmp_path}/fresh_cache")
    with pytest.raises(CheckpointError, match="nope.ckpt"):
        train(cfg)
    assert not (tmp_path / "fresh_cache").exists()


def test_checkpoint_that_needs_pickled_code_is_refused(tiny_cfg, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": ValueError("runs code on load")}, path)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        train(tiny_cfg(f"train.checkpoint_path={path}"))


def test_resume_from_a_weights_only_file_is_refused(tiny_cfg, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="train.checkpoint_path instead"):
        train(tiny_cfg(f"train.resume_from={path}"))


def test_finetune_onto_another_class_count_reinitialises_the_class_head(tiny_cfg, tiny_run):
    pretrained = tiny_run  # data=synthetic
    summary = train(tiny_cfg("data=synthetic_v2", f"train.checkpoint_path={pretrained.last_checkpoint}"))
    assert summary.class_head == "re-initialised"
    same_classes = train(tiny_cfg("data=synthetic", f"train.checkpoint_path={pretrained.last_checkpoint}"))
    assert same_classes.class_head == "loaded"


def test_a_fine_tune_with_fewer_queries_than_objects_loads_and_warns_at_start_up(tiny_cfg, tiny_run, caplog):
    """The tiny data holds up to 5 shapes per image: 2 queries cap recall (warned, with the value to set), and
    the 10-query checkpoint loads into the 2-query model, reported like the class head."""
    pretrained = tiny_run
    limits = ("trainer.limit_train_batches=1", "trainer.limit_val_batches=1")
    with caplog.at_level("INFO", logger="detr_ft"):
        train(tiny_cfg("model.num_queries=2", f"train.checkpoint_path={pretrained.last_checkpoint}", *limits))
    logged = caplog.text
    assert "train objects per image: largest" in logged and "(model.num_queries=2)" in logged
    assert "hold more objects than model.num_queries=2" in logged and "Set model.num_queries=" in logged
    assert "queries 10 -> 2: the first 2 loaded, 8 dropped" in logged


def test_checkpoint_of_another_architecture_fails_naming_the_path(tiny_cfg, tiny_run):
    tiny = tiny_run
    with pytest.raises(CheckpointError, match="last.ckpt"):
        train(tiny_cfg("model.transformer.d_model=48", f"train.checkpoint_path={tiny.last_checkpoint}"))


def test_make_runs_default_start_is_the_shipped_asset():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from detr_ft.config.schema import ASSETS_DIR, config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for overrides in ([], ["experiment=quickstart"]):
            cfg = compose("config", overrides=overrides)
            assert cfg.train.checkpoint_path == str(ASSETS_DIR / "synthetic_pretrained.ckpt")
            assert cfg.model.backbone.name == "resnet18" and cfg.model.num_queries == 20  # detr_small, the asset's
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("option", ["detr_tiny", "detr_small", "detr_r18", "detr_r50", "detr_r101"])
def test_the_default_weights_follow_the_model_so_changing_model_never_breaks_the_start(option):
    """`python -m detr_ft model=X`: train.checkpoint_path defaults to weights made for X (the shipped asset for
    detr_small only, the official release for detr_r50/r101 by name), or none."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from detr_ft.checkpoints.published_weights import PUBLISHED
    from detr_ft.checkpoints.weight_loading import load_weights
    from detr_ft.config.schema import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={option}", "model.backbone.weights=null"])
    GlobalHydra.instance().clear()
    default = cfg.train.checkpoint_path
    expected = {"detr_small": "asset", "detr_r50": "detr-r50", "detr_r101": "detr-r101"}.get(option)
    if expected == "asset":
        model = instantiate(cfg.model, num_classes=4)  # the asset's own class count: every tensor must fit
        load_weights(model, checkpoint_file.read(default).model_state, strict=True)
    elif expected is None:
        assert default is None
    else:
        assert default == expected and PUBLISHED[default].model == option


def test_a_fine_tune_from_the_shipped_asset_starts_from_its_weights_with_a_new_class_head(tiny_cfg):
    """Everything but the class head equals the asset's (stored in fp16); the 6-class head is new: none of
    its rows is one of the asset's 4-class rows, and its values are those of a fresh nn.Linear."""
    from detr_ft.config.schema import ASSETS_DIR
    from tests.training.recorders import InitialState

    asset_path = ASSETS_DIR / "synthetic_pretrained.ckpt"
    saved = torch.load(asset_path, weights_only=True)["state_dict"]
    # The asset's backbone was pretrained with trainable BatchNorm: its step counters mean nothing to frozen norms.
    asset = {k.removeprefix("model."): v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
    state = InitialState()
    cfg = tiny_cfg(
        "model=detr_small",
        "data=synthetic_v2",
        f"train.checkpoint_path={asset_path}",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
    )
    summary = train(cfg, callbacks=[state])
    assert summary.class_head == "re-initialised"
    head = ("class_head.weight", "class_head.bias")
    assert set(state.state) == set(asset)
    for key in set(asset) - set(head):
        assert torch.equal(state.state[key], asset[key].to(state.state[key].dtype)), key
    new, old = state.state["class_head.weight"], asset["class_head.weight"].float()
    assert new.shape == (7, old.shape[1]) and old.shape[0] == 5  # 6 (resp. 4) classes + no object
    assert not any(torch.allclose(row, old_row, atol=1e-3) for row in new for old_row in old)
    bound = 1 / old.shape[1] ** 0.5  # nn.Linear's initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert new.abs().max() <= bound and state.state["class_head.bias"].abs().max() <= bound
    assert old.abs().max() > bound, "the asset's trained head must be told apart from a fresh one"
