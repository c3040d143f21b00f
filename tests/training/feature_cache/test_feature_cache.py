"""train.cache_backbone_features: cached backbone outputs equal fresh ones, the model's outputs with the cache
equal those without it, a second job reuses the files on disk, and settings where the cache would be wrong
are refused with the keys to change."""

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from detr_ft.data.collate import collate
from detr_ft.train import train
from detr_ft.training.feature_cache.callback import SPLITS, BackboneFeatureCache, check_cacheable
from detr_ft.training.feature_cache.store import CachedBackboneFeatures, FeatureStore, backbone_fingerprint
from detr_ft.training.loop.finetuning import UnfreezePlan

CACHED_FROZEN = ("finetune_strategy=frozen", "data.train_augmentation=false", "train.cache_backbone_features=true")


@pytest.fixture
def parts(tiny_cfg, tmp_path):
    """(tiny model with a frozen backbone in eval mode, datamodule without train augmentation, cache folder)."""
    cfg = tiny_cfg(*CACHED_FROZEN, f"train.feature_cache_dir={tmp_path / 'features'}")
    datamodule = instantiate(cfg.data, batch_size=4, num_workers=0)
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_classes=datamodule.num_classes).eval()
    model.freeze_backbone()
    return cfg, model, datamodule


def _batches(datamodule, order: list[int], batch_size: int = 4) -> list:
    dataset = datamodule.dataset("train")
    subset = torch.utils.data.Subset(dataset, order)
    return list(DataLoader(subset, batch_size=batch_size, collate_fn=collate, shuffle=False))


def _new_cache(cfg, model, datamodule) -> CachedBackboneFeatures:
    splits = {split: (datamodule.dataset(split), datamodule.deterministic_transform(split)) for split in SPLITS}
    return CachedBackboneFeatures(cfg.train.feature_cache_dir, splits)


def test_cache_hits_equal_fresh_features_and_outputs(parts):
    cfg, model, datamodule = parts
    cache = _new_cache(cfg, model, datamodule)
    batches = _batches(datamodule, list(range(16)))
    with torch.no_grad():
        for _ in range(2):  # epoch 1 computes and stores, epoch 2 reads
            for images, mask, targets in batches:
                features, feature_mask = cache.features(model.backbone, images, mask, targets, "train")
                fresh, fresh_mask = model.backbone(images, mask)
                assert torch.equal(features, fresh) and torch.equal(feature_mask, fresh_mask)
                cached_out = model.forward_from_features(features, feature_mask)
                fresh_out = model(images, mask)
                assert torch.equal(cached_out["pred_logits"], fresh_out["pred_logits"])
                assert torch.equal(cached_out["pred_boxes"], fresh_out["pred_boxes"])
    assert cache.counts == {"hits": 16, "misses": 16}

    # Other batch compositions (as a shuffled loader makes): still hits; bit-equal to what the backbone computes
    # for that batch at the same batch size, equal up to float rounding at another size (a batch of 1 or 3 takes
    # other CPU kernels than a batch of 4: the same rounding moves an uncached run's features by batch size).
    for batch_size in (4, 3):
        for images, mask, targets in _batches(datamodule, list(range(15, -1, -1)), batch_size):
            with torch.no_grad():
                features, _ = cache.features(model.backbone, images, mask, targets, "train")
                fresh, _ = model.backbone(images, mask)
            if batch_size == 4:
                assert torch.equal(features, fresh)
            # Float rounding of other kernels: measured up to 2.0e-6 (channels-last oneDNN); a wrong entry is O(1) off.
            torch.testing.assert_close(features, fresh, rtol=0, atol=1e-5)
    assert cache.counts["misses"] == 16


def test_a_different_canvas_is_a_different_entry(parts):
    """Padding changes an image's border features (zero_padding=false) or their alignment: an image padded to
    a larger batch canvas is computed for that canvas, never served from its unpadded entry."""
    cfg, model, datamodule = parts
    model.backbone.zero_padding = False  # the paper's backbone: padding leaks into the features
    cache = _new_cache(cfg, model, datamodule)
    images, mask, targets = _batches(datamodule, [0, 1])[0]
    padded = torch.nn.functional.pad(images, (0, 16, 0, 8))  # a canvas 8 px taller and 16 px wider
    padded_mask = torch.nn.functional.pad(mask, (0, 16, 0, 8), value=True)
    with torch.no_grad():
        cache.features(model.backbone, images, mask, targets, "train")
        features, feature_mask = cache.features(model.backbone, padded, padded_mask, targets, "train")
        fresh, fresh_mask = model.backbone(padded, padded_mask)
        unpadded, _ = model.backbone(images, mask)
    assert cache.counts == {"hits": 0, "misses": 4}
    assert torch.equal(features, fresh) and torch.equal(feature_mask, fresh_mask)
    h, w = unpadded.shape[-2:]
    assert not torch.allclose(fresh[..., :h, :w], unpadded, atol=1e-3)  # why the canvas is part of the key


def test_a_second_job_reuses_the_files_on_disk(parts, tmp_path):
    cfg, model, datamodule = parts
    batches = _batches(datamodule, list(range(8)))
    first = _new_cache(cfg, model, datamodule)
    with torch.no_grad():
        stored = [first.features(model.backbone, *batch, "train")[0] for batch in batches]
    files = sorted((tmp_path / "features").rglob("*.pt"))
    assert len(files) == 8
    assert not list((tmp_path / "features").rglob("*.tmp"))  # written atomically: no leftovers

    second = _new_cache(cfg, model, datamodule)  # a new job: nothing in memory, the same folder
    with torch.no_grad():
        again = [second.features(model.backbone, *batch, "train")[0] for batch in batches]
    assert second.counts == {"hits": 8, "misses": 0}
    assert all(torch.equal(a, b) for a, b in zip(stored, again, strict=True))

    files[0].write_bytes(b"not a tensor")  # a damaged file is recomputed, not trusted
    third = _new_cache(cfg, model, datamodule)
    with torch.no_grad():
        recomputed = [third.features(model.backbone, *batch, "train")[0] for batch in batches]
    assert third.counts == {"hits": 7, "misses": 1}
    for a, b in zip(stored, recomputed, strict=True):  # the damaged one recomputed alone: float rounding apart
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_other_weights_or_padding_rule_make_other_keys(parts):
    _, model, _ = parts
    original = backbone_fingerprint(model.backbone)
    model.backbone.zero_padding = not model.backbone.zero_padding
    assert backbone_fingerprint(model.backbone) != original
    model.backbone.zero_padding = not model.backbone.zero_padding
    with torch.no_grad():
        model.backbone.body.layer3[0].conv1.weight[0, 0, 0, 0] += 1e-3
    assert backbone_fingerprint(model.backbone) != original


def test_training_with_the_cache_equals_training_without(tiny_cfg, tmp_path):
    """Two epochs of the frozen strategy with and without the cache end with the same weights; a second job on
    the same cache folder (a sweep's next learning rate) finds every image's features from its first epoch."""

    class Recorder(pl.Callback):
        def on_fit_end(self, trainer, pl_module):
            self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
            caches = [c for c in trainer.callbacks if isinstance(c, BackboneFeatureCache)]
            assert len(caches) == 1  # the config's callbacks.feature_cache node, on or off
            self.history = caches[0].history
            self.wrapped = "forward" in vars(pl_module.model.backbone)  # the cache sits in front of it during fit
            self.cached = caches[0].cache is not None

    folder = f"train.feature_cache_dir={tmp_path / 'features'}"
    runs = {}
    for name, cache_on in (("fresh", "false"), ("cached", "true"), ("second_job", "true")):
        cfg = tiny_cfg(*CACHED_FROZEN[:2], f"train.cache_backbone_features={cache_on}", folder, "train.epochs=2")
        runs[name] = Recorder()
        train(cfg, callbacks=[runs[name]])
    assert runs["fresh"].history == [] and not runs["fresh"].wrapped and not runs["fresh"].cached
    assert runs["cached"].wrapped and runs["cached"].cached
    first_job = {(h["epoch"], h["stage"]): (h["hits"], h["misses"]) for h in runs["cached"].history}
    assert first_job == {(0, "train"): (0, 16), (0, "val"): (0, 8), (1, "train"): (16, 0), (1, "val"): (8, 0)}
    assert all(h["misses"] == 0 for h in runs["second_job"].history)
    for name in ("cached", "second_job"):
        for key, value in runs["fresh"].state.items():
            torch.testing.assert_close(runs[name].state[key], value, rtol=0, atol=1e-6, msg=f"{name}: {key}")


@pytest.mark.parametrize(
    "plan, names",
    [
        (UnfreezePlan(["layer2", "layer3"], freeze_backbone=False), ["train.freeze_backbone=False"]),
        (UnfreezePlan(["layer2", "layer3"], True, unfreeze_backbone_at_epoch=3), ["unfreeze_backbone_at_epoch=3"]),
        (UnfreezePlan(["layer2", "layer3"], True, unfreeze_schedule={"layer3": 9}), ["train.unfreeze_schedule"]),
    ],
)
def test_a_backbone_that_trains_is_refused(plan, names):
    with pytest.raises(ValueError, match="train.cache_backbone_features=true needs a backbone that never trains") as e:
        check_cacheable(plan, epochs=10, train_transform={"kind": "eval"})
    assert all(name in str(e.value) for name in names)
    assert "finetune_strategy=frozen" in str(e.value)


def test_unfreezing_after_the_last_epoch_is_accepted():
    plan = UnfreezePlan(["layer2", "layer3"], True, unfreeze_backbone_at_epoch=10)
    check_cacheable(plan, epochs=10, train_transform={"kind": "eval"})


def test_random_train_transforms_are_refused_before_training(tiny_cfg):
    cfg = tiny_cfg("finetune_strategy=frozen", "train.cache_backbone_features=true")  # augmentation on
    with pytest.raises(ValueError, match="data.train_augmentation=false"):
        train(cfg)
    cfg = tiny_cfg(
        "finetune_strategy=progressive",
        "train.epochs=2",
        "train.unfreeze_backbone_at_epoch=1",
        "data.train_augmentation=false",
        "train.cache_backbone_features=true",
    )
    with pytest.raises(ValueError, match="needs a backbone that never trains"):
        train(cfg)


def test_a_backbone_training_under_the_cache_is_an_error(parts):
    cfg, model, datamodule = parts
    cache = _new_cache(cfg, model, datamodule)
    images, mask, targets = _batches(datamodule, [0, 1])[0]
    model.unfreeze_backbone(["layer3"])
    cache.features(model.backbone, images, mask, targets, "val")  # eval mode (Lightning's sanity check): fresh
    assert cache.counts == {"hits": 0, "misses": 0}
    model.train()
    with pytest.raises(RuntimeError, match="layer3"):
        cache.features(model.backbone, images, mask, targets, "train")


def test_an_unwritable_folder_is_named(parts, tmp_path):
    cfg, model, datamodule = parts
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="train.feature_cache_dir=.*a_file"):
        FeatureStore(blocker / "features")


def test_the_callback_serves_train_batches_from_the_cache_and_leaves_the_backbone_as_it_was(parts, tmp_path):
    """The callback alone (as the callbacks.feature_cache node builds it): the fit's start puts the cache in front
    of the backbone for the batches of the run, other calls compute fresh, teardown restores the backbone's forward."""
    _, model, datamodule = parts
    # What the callback reads from the Trainer and the LightningModule.
    trainer = type("Trainer", (), {"datamodule": datamodule, "max_epochs": 2})()
    pl_module = type("Module", (), {"model": model})()
    callback = BackboneFeatureCache(True, tmp_path / "features", freeze_backbone=True)
    callback.on_fit_start(trainer, pl_module)
    batch = _batches(datamodule, [0, 1, 2])[0]
    images, mask, _ = batch
    with torch.no_grad():
        for _ in range(2):
            callback.on_train_batch_start(trainer, pl_module, batch, 0)
            cached = model(images, mask)
            callback.on_train_batch_end(trainer, pl_module, None, batch, 0)
        assert callback.cache.counts == {"hits": 3, "misses": 3}
        model(images, mask)  # outside a batch (e.g. a picture callback): computed, not counted
        assert callback.cache.counts == {"hits": 3, "misses": 3}
        callback.teardown(trainer, pl_module, "fit")
        assert "forward" not in vars(model.backbone)
        fresh = model(images, mask)
    assert torch.equal(cached["pred_logits"], fresh["pred_logits"])
    assert torch.equal(cached["pred_boxes"], fresh["pred_boxes"])


def test_a_disabled_callback_changes_nothing(parts, tmp_path):
    _, model, datamodule = parts
    trainer = type("Trainer", (), {"datamodule": datamodule, "max_epochs": 2})()
    pl_module = type("Module", (), {"model": model})()
    callback = BackboneFeatureCache(False, tmp_path / "features", freeze_backbone=False)  # would be refused if on
    callback.on_fit_start(trainer, pl_module)
    assert callback.cache is None and "forward" not in vars(model.backbone)
    assert not (tmp_path / "features").exists()


def test_a_query_groups_checkpoint_trains_with_the_cache_as_without(tiny_cfg, tmp_path):
    """A K > 1 checkpoint (training-only queries in its state dict) fine-tuned with query groups: the cache
    serves the frozen backbone's features and the weights end as without it."""
    aids = ("model.query_groups=2", "model.one_to_many_queries=4", "callbacks.prediction_pictures=null")
    source = train(tiny_cfg(*aids))
    assert any("training_queries" in k for k in torch.load(source.last_checkpoint, weights_only=True)["state_dict"])

    class Recorder(pl.Callback):
        def on_fit_end(self, trainer, pl_module):
            self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
            self.history = next(c for c in trainer.callbacks if isinstance(c, BackboneFeatureCache)).history

    runs = {}
    for cache_on in ("false", "true"):
        runs[cache_on] = Recorder()
        cfg = tiny_cfg(
            *CACHED_FROZEN[:2],
            *aids,
            f"train.cache_backbone_features={cache_on}",
            f"train.feature_cache_dir={tmp_path / 'features'}",
            f"train.checkpoint_path={source.last_checkpoint}",
            "train.epochs=2",
        )
        train(cfg, callbacks=[runs[cache_on]])
    assert {(h["epoch"], h["stage"]): h["hits"] for h in runs["true"].history}[(1, "train")] == 16
    for key, value in runs["false"].state.items():
        torch.testing.assert_close(runs["true"].state[key], value, rtol=0, atol=1e-6, msg=key)
