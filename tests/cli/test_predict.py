"""`python -m detr_ft.predict`: a checkpoint made here from the tiny model config, run on two small PNGs."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from detr_ft.checkpoints.checkpoint_file import export_weights
from detr_ft.checkpoints.weight_layouts import CheckpointError
from detr_ft.config.schema import config_dir
from detr_ft.data.categories import CategoryMap
from detr_ft.inference.image_folder import fresh_output_dir, predict
from detr_ft.predict import main
from tests.conftest import compose_config, run_cli

# File category ids that are neither 0/1-based nor contiguous.
CATEGORY_MAP = CategoryMap.from_coco_categories([{"id": 3, "name": "dog"}, {"id": 7, "name": "cat"}])
SIZES = {"tall.png": (60, 40), "wide.png": (40, 80)}  # (h, w)
CAT_PROBABILITY = torch.tensor([0.0, 5.0, -5.0]).softmax(0)[1].item()


def fixed_box_model(cfg):
    """The tiny DETR whose every query says: a cat (label 1 -> category 7) at cxcywh (0.5, 0.25, 0.5, 0.5),
    i.e. xyxy (0.25, 0, 0.75, 0.5) of whatever image it sees, with probability softmax(0, 5, -5)[1]."""
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_classes=CATEGORY_MAP.num_classes)
    with torch.no_grad():
        model.class_head.weight.zero_()
        model.class_head.bias.copy_(torch.tensor([0.0, 5.0, -5.0]))
        last = model.box_head.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.logit(torch.tensor([0.5, 0.25, 0.5, 0.5])))
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A file in our Lightning checkpoint layout: state_dict of model.<key>, config YAML, category map."""
    folder = tmp_path_factory.mktemp("checkpoint")
    # As a run's config is stored: resolved, with the run folder Hydra would have set.
    cfg = compose_config(["data.eval_scale=48", "data.max_size=64"], folder / "run", folder / "cache")
    GlobalHydra.instance().clear()
    model = fixed_box_model(cfg)
    path = folder / "best_epoch=1-step=2-val_mAP=0.5000.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{key}": value for key, value in model.state_dict().items()},
            "detr_ft": {"config": OmegaConf.to_yaml(cfg, resolve=True), "category_map": CATEGORY_MAP.to_dict()},
            "optimizer_states": [],
        },
        path,
    )
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (height, width) in SIZES.items():
        Image.new("RGB", (width, height), (90, 140, 200)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_writes_coco_detections_in_original_pixels_and_drawn_copies(checkpoint, photos, tmp_path):
    originals = {p.name: p.read_bytes() for p in photos.iterdir()}
    folder = predict(checkpoint, photos, threshold=0.7, output=tmp_path / "out", device="cpu")
    assert folder == tmp_path / "out"
    assert sorted(p.name for p in folder.iterdir()) == ["detections.json", "tall.png", "wide.png"]
    detections = json.loads((folder / "detections.json").read_text())
    queries = 10  # conf/model/detr_tiny.yaml
    assert len(detections) == 2 * queries
    for detection in detections:
        height, width = SIZES[detection["file_name"]]
        assert detection["category_id"] == 7 and detection["category_name"] == "cat"
        assert detection["score"] == pytest.approx(CAT_PROBABILITY, abs=1e-4)
        assert detection["bbox"] == pytest.approx([0.25 * width, 0.0, 0.5 * width, 0.5 * height], abs=0.02)
    assert {d["image_id"] for d in detections} == {1, 2}  # numbered in sorted file order
    drawn = Image.open(folder / "tall.png")
    assert drawn.size == (40, 60)  # (w, h): the original size
    assert drawn.getpixel((10, 15)) != (90, 140, 200)  # the box's left edge at x = 0.25 * 40 is drawn
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == originals  # inputs untouched


def test_threshold_filters_and_a_single_image_works(checkpoint, photos, tmp_path):
    folder = predict(checkpoint, photos / "wide.png", threshold=0.999, output=tmp_path / "strict")
    assert json.loads((folder / "detections.json").read_text()) == []
    assert Image.open(folder / "wide.png").getpixel((20, 10)) == (90, 140, 200)  # nothing drawn


def test_a_non_empty_output_folder_is_never_written_into(checkpoint, photos, tmp_path):
    first = predict(checkpoint, photos, output=tmp_path / "predictions", device="cpu")
    second = predict(checkpoint, photos, output=tmp_path / "predictions", device="cpu")
    assert (first.name, second.name) == ("predictions", "predictions_1")
    # Output = the input folder: the user's images are not overwritten, a sibling is used.
    beside = predict(checkpoint, photos, output=photos, device="cpu")
    assert beside == photos.with_name("photos_1") and not (photos / "detections.json").exists()
    assert fresh_output_dir(tmp_path / "new" / "deeper").is_dir()


def test_an_unreadable_image_is_skipped_and_named(checkpoint, photos, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    folder = predict(checkpoint, photos, output=tmp_path / "out")
    assert "broken.jpg" in capsys.readouterr().err
    assert {d["file_name"] for d in json.loads((folder / "detections.json").read_text())} == set(SIZES)
    with pytest.raises(ValueError, match="none of the input images"):
        predict(checkpoint, photos / "broken.jpg", output=tmp_path / "only_broken")


def test_exported_half_precision_weights_give_the_same_detections(checkpoint, photos, tmp_path):
    small = export_weights(checkpoint, tmp_path / "small.ckpt", half=True)
    boxes = []
    for path, name in ((checkpoint, "full"), (small, "half")):
        folder = predict(path, photos / "tall.png", output=tmp_path / name)
        boxes.append([v for d in json.loads((folder / "detections.json").read_text()) for v in d["bbox"]])
    assert len(boxes[0]) == 10 * 4 and boxes[1] == pytest.approx(boxes[0], abs=0.5)


def test_missing_paths_and_bad_values_are_named(checkpoint, photos, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        predict(tmp_path / "nowhere.ckpt", photos)
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        predict(checkpoint, tmp_path / "no_such_folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        predict(checkpoint, tmp_path / "empty")
    with pytest.raises(ValueError, match="notes.txt"):
        predict(checkpoint, photos / "notes.txt")
    with pytest.raises(ValueError, match="threshold"):
        predict(checkpoint, photos, threshold=7)
    with pytest.raises(ValueError, match="device"):
        predict(checkpoint, photos, device="tpu")
    assert not (tmp_path / "predictions").exists()  # nothing written before the inputs were checked


def test_a_checkpoint_naming_foreign_code_is_refused(checkpoint, photos, tmp_path):
    saved = torch.load(checkpoint, weights_only=True)
    config = OmegaConf.create(saved["detr_ft"]["config"])
    config.model.backbone._target_ = "os.system"
    saved["detr_ft"]["config"] = OmegaConf.to_yaml(config)
    torch.save(saved, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="os.system"):
        predict(tmp_path / "evil.ckpt", photos, output=tmp_path / "out")
    torch.save({"model": {}}, tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="not a detr_ft checkpoint"):
        predict(tmp_path / "official.pth", photos, output=tmp_path / "out")


def _command_line(*overrides: str):
    """conf/predict.yaml composed with `overrides` as `python -m detr_ft.predict ...` composes it."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("predict", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def test_cli_names_a_misspelt_key_a_missing_one_a_bare_argument_and_a_missing_file():
    with pytest.raises(ConfigCompositionException, match="treshold") as error:
        _command_line("checkpoint=x.ckpt", "input=photos", "treshold=0.5")
    assert "PredictConfig" in str(error.value.__cause__)  # the schema whose keys `--help` lists
    with pytest.raises(SystemExit, match="missing input=.*--help"):
        main(_command_line("checkpoint=x.ckpt"))
    with pytest.raises(OverrideParseException, match="photo.jpg"):
        _command_line("photo.jpg")
    with pytest.raises(SystemExit, match="x.ckpt does not exist"):
        main(_command_line("checkpoint=x.ckpt", "input=photos"))


@pytest.mark.slow
def test_cli_end_to_end(checkpoint, photos, tmp_path):
    """The checkpoint's Lightning name holds '=': Hydra's grammar takes such a path quoted, as --help says."""
    result = run_cli(
        [
            "-m",
            "detr_ft.predict",
            f"checkpoint='{checkpoint}'",
            f"input={photos}",
            "threshold=0.5",
            "output=cli",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 20 detections for 2 images" in result.stdout
    assert len(json.loads((tmp_path / "cli" / "detections.json").read_text())) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli", "photos"], "no outputs/, .hydra/ or log file"


@pytest.mark.slow
def test_export_cli_writes_a_copy_predict_reads_and_overwrites_only_when_told(checkpoint, photos, tmp_path):
    """As `make pretrain` calls it: checkpoint=... output=... overwrite=true."""
    command = ["-m", "detr_ft.export", f"checkpoint='{checkpoint}'", "output=small.ckpt"]
    first = run_cli(command, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "wrote small.ckpt" in first.stdout
    before = (tmp_path / "small.ckpt").stat().st_mtime_ns
    again = run_cli(command, cwd=tmp_path, timeout=300)
    assert again.returncode != 0 and again.stderr.strip().startswith("error:") and "overwrite=true" in again.stderr
    assert (tmp_path / "small.ckpt").stat().st_mtime_ns == before
    replaced = run_cli([*command, "overwrite=true", "half=false"], cwd=tmp_path, timeout=300)
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "small.ckpt"], "no outputs/, .hydra/ or log file"
    folder = predict(tmp_path / "small.ckpt", photos / "tall.png", output=tmp_path / "out")
    assert len(json.loads((folder / "detections.json").read_text())) == 10


def test_a_run_folder_stands_for_its_best_checkpoint(checkpoint, photos, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / checkpoint.name).write_bytes(checkpoint.read_bytes())
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not read: predict takes the best checkpoint")
    by_file = json.loads((predict(checkpoint, photos, output=tmp_path / "a") / "detections.json").read_text())
    by_folder = json.loads((predict(run, photos, output=tmp_path / "b") / "detections.json").read_text())
    assert by_folder == by_file and by_file
