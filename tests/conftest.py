"""Shared fixtures: the real config, composed with tiny settings (CPU, tiny model, tiny synthetic data,
no MLflow unless a test asks), so tests exercise what users run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from detr_ft.config.schema import config_dir
from tests.tiers import (  # noqa: F401  (hooks: the slow tier marked by what a test starts, and guarded)
    pytest_collection_modifyitems,
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """One intra-op thread per test process, set before torch is imported and inherited by the processes tests
    start: on these tiny tensors a second thread costs more in synchronisation than it saves (a tiny run took
    twice the CPU time with two), and `-n auto` already gives every core a worker."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


# Small enough that an epoch takes a second or two on 2 CPU cores.
TINY_OVERRIDES = [
    "model=detr_tiny",
    "data=synthetic",
    "data.train_size=16",
    "data.val_size=8",
    "data.image_size=64",
    "data.train_scales=[64]",
    "data.max_size=64",
    "data.eval_scale=64",
    "trainer=cpu",
    "logger=none",
    "train.checkpoint_path=null",
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.unfreeze_warmup_steps=0",
]
# The pictures a run draws as it goes (matplotlib: about half of a tiny run's CPU time) are off in the in-process
# runs unless a test asks for them (`tiny_cfg(..., pictures=True)`); the CLI runs (TINY_OVERRIDES) draw them all.
NO_PICTURES = [f"callbacks.{name}=null" for name in ("dataset_overview", "results_picture", "prediction_pictures")]


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory) -> Path:
    """$DETR_FT_CACHE of this pytest process (one per xdist worker), for it and the processes it starts: the
    synthetic data and backbone features of configs that name no folder land there, not in ~/.cache/detr_ft,
    shared with the user's runs and with tests running in parallel. Module fixtures work in a folder of the
    process's own too (each test then gets its own, below)."""
    cache = tmp_path_factory.mktemp("detr_ft_cache")
    _STORE_TEMPLATE.append(tmp_path_factory.mktemp("mlflow_template") / "mlflow.db")  # made on first use
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETR_FT_CACHE", str(cache))
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield cache


@pytest.fixture(autouse=True)
def own_working_folder(tmp_path_factory, monkeypatch) -> Path:
    """Each test runs in an empty folder of its own: a relative path (sqlite:///mlflow.db, outputs/, multirun/,
    predictions/) never lands in the checkout, nor in a folder another test uses at the same time."""
    folder = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One synthetic-data cache for the whole session (the generator reuses it across tests)."""
    return tmp_path_factory.mktemp("synthetic_cache")


# The one synthetic dataset the data tests share (v1: circle, square, triangle, cross), in the session cache.
SHARED_SYNTHETIC = {"train_size": 48, "val_size": 6, "image_size": 96, "seed": 5}


@pytest.fixture(scope="session")
def synthetic_folder(data_cache) -> Path:
    """A generated COCO-format folder: train/, val/, annotations/instances_{train,val}.json."""
    from detr_ft.data.synthetic import ensure_dataset

    return ensure_dataset(data_cache, "v1", **SHARED_SYNTHETIC)


def compose_config(overrides: list[str], run_dir: Path, cache_dir: Path, pictures: bool = False) -> DictConfig:
    """The app's config as `python -m detr_ft` would see it, with HydraConfig set for the run folder; the tiny
    settings and NO_PICTURES (unless `pictures`) go first, left out where `overrides` set the same key."""
    given = {o.split("=", 1)[0] for o in overrides}
    tiny = [*TINY_OVERRIDES, f"data.cache_dir={cache_dir}", *([] if pictures else NO_PICTURES)]
    defaults = [o for o in tiny if o.split("=", 1)[0] not in given]
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[*defaults, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def tiny_cfg(tmp_path, data_cache):
    """A factory: tiny_cfg(*overrides, pictures=False) -> composed config with a fresh run folder under tmp_path."""
    made = []

    def make(*overrides: str, pictures: bool = False) -> DictConfig:
        made.append(len(made))
        return compose_config(list(overrides), tmp_path / f"run{len(made)}", data_cache, pictures)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_cache):
    """The summary of one run of the tiny config as it is (1 epoch, no MLflow), trained once per pytest process
    for the tests that only read a finished run: its summary, checkpoints and folder. Never write into its
    folder: fine-tune from it or resume it into a folder of your own (or copy it first)."""
    from detr_ft.train import train

    summary = train(compose_config([], tmp_path_factory.mktemp("tiny_run") / "run", data_cache))
    GlobalHydra.instance().clear()
    return summary


_STORE_TEMPLATE: list[Path] = []  # this process's empty MLflow store (own_cache names it, mlflow_store makes it)


def mlflow_store(folder: Path) -> str:
    """The URI of the MLflow sqlite store folder/mlflow.db, made empty when there is none yet: a copy of one whose
    tables this process made once (MLflow's migrations take seconds, a copy milliseconds). The tests of a store
    being made (processes racing to a fresh file, an unusable file) name a path with no file instead."""
    path, template = folder / "mlflow.db", _STORE_TEMPLATE[-1]
    if not template.exists():
        from mlflow.tracking import MlflowClient

        MlflowClient(f"sqlite:///{template}").search_experiments()  # makes the tables
    if not path.exists():  # a second run in the folder logs to the same store
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m detr_ft ...` (or another module given as args[0] starting with -m) like a user."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_app_with_mlflow(
    tmp_path: Path, *args: str, multirun: bool = False, fresh_store: bool = False
) -> tuple[subprocess.CompletedProcess, str]:
    """`python -m detr_ft [--multirun] ARGS` with the tiny settings, logging to an empty sqlite store in tmp_path
    (`fresh_store`: one the app makes itself) -> (the finished process, the store's tracking URI)."""
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db" if fresh_store else mlflow_store(tmp_path)
    tiny = [o for o in TINY_OVERRIDES if not o.startswith("logger=")]
    store = [f"data.cache_dir={tmp_path}/cache", f"logger.tracking_uri={tracking_uri}"]
    flags = ["--multirun"] if multirun else []  # before the overrides: argparse wants them in one run
    return run_cli(["-m", "detr_ft", *flags, *tiny, *store, *args], cwd=tmp_path), tracking_uri  # later ones win


def sweep_runs(tracking_uri: str) -> tuple[list, list]:
    """-> (sweep parent runs, job runs) of the store's detr_ft experiment."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("detr_ft")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parents = [r for r in runs if r.data.tags.get("detr_ft.kind") == "sweep"]
    return parents, [r for r in runs if r not in parents]
