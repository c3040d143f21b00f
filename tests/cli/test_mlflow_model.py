"""From a run to a model anyone can load: the run's data as MLflow dataset inputs, its weights as a pyfunc model
that a fresh process loads without the config, the Model Registry's @best alias, and `models:/` references for
predict and fine-tuning, on one real sqlite store."""

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from detr_ft import tracking
from detr_ft.checkpoints import checkpoint_file
from detr_ft.inference.image_folder import predict
from detr_ft.tracking import registry
from detr_ft.train import train
from tests.conftest import compose_config, mlflow_store, run_app_with_mlflow, run_cli, sweep_runs

NAME = "detr-test"
LOAD_AND_PREDICT = """
import json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
rows = model.predict(sys.argv[3:], params={"threshold": 0.0})
print("ROWS=" + rows.to_json(orient="records"))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory, data_cache):
    """One run that logs its best checkpoint as its model and registers it as NAME."""
    root = tmp_path_factory.mktemp("mlflow_model")
    uri = mlflow_store(root)
    overrides = ["logger=mlflow", f"logger.tracking_uri={uri}", f"logger.register_model={NAME}"]
    summary = train(compose_config(overrides, root / "run", data_cache))
    client = MlflowClient(uri)
    run = client.get_run(summary.mlflow_run_id)
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    val_folder = Path(json.loads(inputs["synthetic/val"].source)["uri"]).parents[1] / "val"
    images = sorted(val_folder.glob("*.png"))[:3]
    return {"uri": uri, "root": root, "summary": summary, "client": client, "run": run, "images": images}


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _records(rows: list[dict]) -> list[tuple]:
    return sorted((r["file_name"], r["category_id"], r["category_name"], tuple(r["bbox"]), r["score"]) for r in rows)


def test_the_runs_splits_are_its_dataset_inputs_with_the_annotation_files_digests(store):
    inputs = store["run"].inputs.dataset_inputs
    by_split = {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset for d in inputs}
    assert sorted(by_split) == ["train", "val"]
    for split, dataset in by_split.items():
        annotations = Path(json.loads(dataset.source)["uri"])
        assert annotations.name == f"instances_{split}.json"
        assert dataset.name == f"synthetic/{split}"
        assert dataset.digest == _sha256(annotations)[:32]
    assert by_split["train"].digest != by_split["val"].digest


def test_a_fresh_process_loads_the_model_and_finds_what_predict_finds(store, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for image in store["images"]:
        shutil.copy(image, folder)
    written = predict(store["summary"].best_checkpoint, folder, threshold=0.0, output=tmp_path / "out", device="cpu")
    expected = _records(json.loads((written / "detections.json").read_text()))
    model_uri = store["run"].data.tags[registry.MODEL_TAG]
    done = run_cli(["-c", LOAD_AND_PREDICT, store["uri"], model_uri, *map(str, sorted(folder.iterdir()))], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.split("ROWS=", 1)[1])
    assert expected and _records(rows) == expected
    assert sorted({r["image_id"] for r in rows}) == [1, 2, 3]


def test_the_registered_model_is_found_by_its_alias_and_predict_runs_it(store, tmp_path):
    version = store["client"].get_model_version_by_alias(NAME, registry.ALIAS)
    assert version.run_id == store["summary"].mlflow_run_id
    args = ["-m", "detr_ft.predict", f"checkpoint=models:/{NAME}@best", f"input={store['images'][0]}"]
    done = run_cli([*args, "threshold=0", "device=cpu", f"tracking_uri={store['uri']}", "output=out"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((tmp_path / "out" / "detections.json").read_text())
    reference = predict(store["summary"].best_checkpoint, store["images"][0], 0.0, tmp_path / "ref", "cpu")
    assert _records(found) == _records(json.loads((reference / "detections.json").read_text()))


def test_train_checkpoint_path_takes_a_registered_model(store):
    """train.checkpoint_path=models:/NAME@best resolves (initial_weights.py) to the run's own weights."""
    reference = f"models:/{NAME}@best"
    assert tracking.is_run_reference(reference)
    resolved = checkpoint_file.read(tracking.resolve_checkpoint_reference(reference, store["uri"]))
    original = checkpoint_file.read(store["summary"].best_checkpoint)
    assert resolved.model_state.keys() == original.model_state.keys()
    assert all(torch.equal(resolved.model_state[k], original.model_state[k]) for k in original.model_state)
    assert resolved.category_map == original.category_map
    with pytest.raises(ValueError, match="not found"):
        tracking.resolve_checkpoint_reference(f"models:/{NAME}@nobody", store["uri"])


def test_a_sweep_moves_the_alias_only_to_a_better_job(store):
    client, uri, experiment = store["client"], store["uri"], store["run"].info.experiment_id
    model_uri = store["run"].data.tags[registry.MODEL_TAG]

    def sweep(value: float) -> tuple[str, bool]:
        parent = client.create_run(experiment, tags={"best_run_id": store["run"].info.run_id})
        client.set_tag(parent.info.run_id, "best_val/mAP", f"{value:.4f}")
        return registry.register_sweep_best(uri, parent.info.run_id, "swept")

    first, moved = sweep(0.30)
    assert moved and client.get_model_version_by_alias("swept", "best").version == int(first)
    worse, moved = sweep(0.20)
    assert not moved and client.get_model_version_by_alias("swept", "best").version == int(first)
    better, moved = sweep(0.45)
    assert moved and client.get_model_version_by_alias("swept", "best").version == int(better)
    assert client.get_model_version("swept", worse).source == model_uri  # registered, just not @best


class _Payload:
    """Would create `marker` when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_tampered_weights_artifact_is_refused_and_its_payload_never_runs(store, tmp_path):
    model_uri = store["run"].data.tags[registry.MODEL_TAG]
    mlflow.set_tracking_uri(store["uri"])
    try:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model")))
    finally:
        mlflow.set_tracking_uri(None)
    weights = next(local.glob("artifacts/*.ckpt"))
    proof = tmp_path / "a_plain_unpickle_runs_it"
    pickle.loads(pickle.dumps(_Payload(proof)))
    assert proof.exists()  # the payload is live: only a safe loader keeps it from running
    marker = tmp_path / "payload_ran"
    weights.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    with pytest.raises(Exception, match="refused to load"):
        mlflow.pyfunc.load_model(str(local))
    assert not marker.exists()


def test_a_real_sweep_registers_its_best_job_and_its_jobs_register_nothing_themselves(tmp_path):
    result, uri = run_app_with_mlflow(
        tmp_path,
        f"hydra.sweep.dir={tmp_path}/multirun",
        "train.learning_rate=1e-4,2e-4",
        "logger.register_model=swept-real",
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parents, jobs = sweep_runs(uri)
    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'swept-real'")
    assert len(jobs) == 2 and all(registry.MODEL_TAG in job.data.tags for job in jobs)  # each logged its model
    assert len(versions) == 1  # the sweep's best job, registered once
    best = client.get_model_version_by_alias("swept-real", "best")
    assert best.run_id == parents[0].data.tags["best_run_id"]
    assert parents[0].data.tags["registered_model"] == f"swept-real/{best.version} (@best)"
