"""A sigmoid-head run from training to every way out: its checkpoint records the head's form, and `predict`, the
ONNX graph (read with the form its metadata names) and the MLflow model give the same detections. The run also
trains through Group DETR's groups and the feature cache (frozen backbone), and writes its confusion matrix."""

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from hydra.utils import instantiate

from detr_ft.checkpoints import checkpoint_file
from detr_ft.data.images import load_rgb
from detr_ft.data.transforms import apply
from detr_ft.export import export_to_onnx
from detr_ft.inference.detector import Detector
from detr_ft.inference.image_folder import predict
from detr_ft.model.classification import form_of_config
from detr_ft.model.onnx_export import head_form
from detr_ft.model.postprocess import postprocess, to_coco_results
from detr_ft.train import train
from tests.conftest import compose_config, run_cli

LOAD_AND_PREDICT = """
import sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
rows = mlflow.pyfunc.load_model(sys.argv[2]).predict(sys.argv[3:], params={"threshold": 0.0})
print("ROWS=" + rows.to_json(orient="records"))
"""
SIGMOID_RUN = [
    "criterion=ia_bce",
    "model.query_groups=2",
    "finetune_strategy=frozen",
    "data.train_augmentation=false",
    "train.cache_backbone_features=true",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_cache):
    root = tmp_path_factory.mktemp("sigmoid_model")
    uri = f"sqlite:///{root}/mlflow.db"
    overrides = [*SIGMOID_RUN, "logger=mlflow", f"logger.tracking_uri={uri}", f"train.feature_cache_dir={root}/f"]
    cfg = compose_config(overrides, root / "run", data_cache)
    here = Path.cwd()
    os.chdir(root)  # the sqlite store's default artifact root is ./mlruns: keep it out of the checkout
    try:
        summary = train(cfg)
    finally:
        os.chdir(here)
    images = sorted(Path(instantiate(cfg.data).paths["val"][0]).glob("*.png"))[:3]
    return {"root": root, "uri": uri, "summary": summary, "images": images}


def test_the_checkpoint_records_the_sigmoid_head_and_the_run_its_confusion_matrix(run):
    saved = checkpoint_file.read(run["summary"].best_checkpoint)
    assert form_of_config(saved.config) == "sigmoid" and saved.config.criterion.class_loss == "ia_bce"
    assert len(saved.model_state["class_head.weight"]) == len(saved.class_names)  # K rows, no no-object row
    matrix = (run["root"] / "run" / "evaluation" / "confusion_matrix_best.csv").read_text().splitlines()
    assert matrix[0].endswith("background") and len(matrix) == len(saved.class_names) + 2
    # Evaluation scored it in the sigmoid form: every (query, class) pair of each image (Q x K < 100), all K classes.
    detections = json.loads((run["root"] / "run" / "val_detections_best.json").read_text())
    per_image = Counter(row["image_id"] for row in detections)
    assert set(per_image.values()) == {saved.config.model.num_queries * len(saved.class_names)}
    assert len({row["category_id"] for row in detections}) == len(saved.class_names)


def _key(row: dict) -> tuple:
    return row["file_name"], row["category_id"], tuple(row["bbox"]), row["score"]


@pytest.mark.slow
def test_predict_onnx_and_the_mlflow_model_give_the_same_detections(run, tmp_path):
    checkpoint = run["summary"].best_checkpoint
    folder = predict(checkpoint, run["images"][0].parent, threshold=0.0, output=tmp_path / "predicted")
    predicted = [r for r in json.loads((folder / "detections.json").read_text()) if r["file_name"] in _names(run)]
    detector = Detector(checkpoint, device="cpu")
    assert len(predicted) == len(run["images"]) * detector.model.num_queries * detector.model.num_classes  # < 100

    onnx_path = export_to_onnx(str(checkpoint), str(tmp_path / "model.onnx"), 64, 18, False)
    assert head_form(onnx_path) == ("sigmoid", detector.model.num_classes)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    from_onnx = []
    for image_id, path in enumerate(run["images"], start=1):
        image = load_rgb(path)
        resized, _, _ = apply(detector.transforms, image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
        mask = np.zeros((1, *resized.shape[1:]), dtype=bool)
        logits, boxes = session.run(None, {"images": resized[None].numpy(), "mask": mask})
        with torch.no_grad():
            expected = detector.model(resized[None])
        assert np.abs(logits - expected["pred_logits"].numpy()).max() <= 1e-4
        outputs = {"pred_logits": torch.from_numpy(logits), "pred_boxes": torch.from_numpy(boxes)}
        found = postprocess(outputs, [torch.tensor(image.shape[1:])], head_form(onnx_path)[0])
        from_onnx += [{**r, "file_name": path.name} for r in to_coco_results(found, [image_id], detector.category_map)]
    assert _close(predicted, from_onnx)

    script = tmp_path / "load.py"
    script.write_text(LOAD_AND_PREDICT)
    model_uri = f"runs:/{run['summary'].mlflow_run_id}/model"
    loaded = run_cli([str(script), run["uri"], model_uri, *map(str, run["images"])], cwd=run["root"])
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    served = json.loads(next(line for line in loaded.stdout.splitlines() if line.startswith("ROWS="))[5:])
    assert sorted(map(_key, served)) == sorted(map(_key, predicted))


def _names(run) -> set[str]:
    return {path.name for path in run["images"]}


def _close(ours: list[dict], theirs: list[dict]) -> bool:
    """The same detections, up to ONNX Runtime's float rounding (scores 1e-4, boxes 0.05 px): each of ours pairs
    with one of theirs of the same image and class."""
    left = list(theirs)
    for row in ours:
        match = next(
            (
                other
                for other in left
                if (other["file_name"], other["category_id"]) == (row["file_name"], row["category_id"])
                and abs(other["score"] - row["score"]) <= 1e-4
                and max(abs(a - b) for a, b in zip(other["bbox"], row["bbox"], strict=True)) <= 0.05
            ),
            None,
        )
        if match is None:
            return False
        left.remove(match)
    return not left


def test_an_onnx_file_from_before_the_sigmoid_head_reads_as_softmax(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [])
    onnx.save(helper.make_model(graph), str(tmp_path / "old.onnx"))
    assert head_form(tmp_path / "old.onnx") == ("softmax", None)
