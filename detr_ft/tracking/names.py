"""What a run is called and which sweep it belongs to: a name from the command-line overrides that differ
between runs (`lr=2e-4, frozen`), and, for a multirun's job, the sweep record its parent run left in the sweep
folder (detr_ft/tracking/sweep_parent.py)."""

import json
import math
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from detr_ft.tracking.tags import PARENT_TAG

SWEEP_FILE = "mlflow_sweep.json"  # in the sweep folder: the parent run's id, store and swept keys
NAME_LIMIT = 40  # short: the MLflow runs table shows about 20 characters before cutting

# Short names for the overrides people sweep most, first in a run's name so names differ where runs do.
_SHORT_KEYS = {
    "train.learning_rate": "lr",
    "finetune_strategy": "strategy",
    "train.backbone_learning_rate": "blr",
    "train.unfreeze_backbone_at_epoch": "unfreeze",
    "train.batch_size": "bs",
    "train.epochs": "ep",
    "train.seed": "seed",
    "experiment": "exp",
}
_PATH_KEYS = ("dir", "path", "uri", "root", "images", "annotations", "resume_from")
_GROUPS = ("model", "data", "trainer")


def _short_value(value: str) -> str:
    """`0.0002` -> `2e-4`, `1.0e-05` -> `1e-5`, `20` -> `20`, other text as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):  # inf, nan: as given
        return value
    if number.is_integer() and abs(number) < 1e5 and "e" not in value.lower():
        return str(int(number))
    if 1e-3 <= abs(number) < 1e5:
        return f"{number:g}"
    mantissa, exponent = f"{number:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _describe(key: str, value: str) -> str:
    """A config group's choice speaks for itself (`frozen`, `detr_tiny`); a value gets its short key."""
    if key in _GROUPS or key in ("finetune_strategy", "experiment"):
        return value
    return f"{_SHORT_KEYS.get(key, key.rsplit('.', 1)[-1])}={_short_value(value)}"


def run_name_from_overrides(overrides: list[str], default: str, keys: set[str] | None = None) -> str:
    """`train.learning_rate=2e-4 finetune_strategy=frozen` -> `lr=2e-4, frozen`: the experiment's
    overrides (only `keys` when given: what a sweep varies), the usual swept keys first, at most NAME_LIMIT
    characters. Where things are stored (paths, logger, hydra) says nothing about the experiment."""
    pairs = {}  # the last value of a key given twice wins, as in Hydra
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if keys is not None and key not in keys:
            continue
        if key.startswith(("hydra.", "logger")) or key.endswith(_PATH_KEYS):
            continue
        pairs[key] = value
    order = list(_SHORT_KEYS) + list(_GROUPS)
    keys_in_order = sorted(pairs, key=lambda key: order.index(key) if key in order else len(order))
    name = ", ".join(_describe(key, pairs[key]) for key in keys_in_order)
    if len(name) > NAME_LIMIT:
        name = name[: NAME_LIMIT - 1].rsplit(", ", 1)[0] + ", …"
    return name or default


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a multirun varies: comma lists and ranges on the command line, and `hydra.sweeper.params`."""
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.key_or_group for o in overrides if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params") or {}
    return keys + [key for key in params if key not in keys]


def read_record(sweep_dir: Path) -> dict | None:
    path = sweep_dir / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_record(sweep_dir: Path, record: dict) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SWEEP_FILE).write_text(json.dumps(record, indent=1))


def _multirun() -> bool:
    mode = HydraConfig.get().mode if HydraConfig.initialized() else None
    return mode is not None and mode.name == "MULTIRUN"


def sweep_record() -> dict | None:
    """The current Hydra job's sweep record, when it is a job of a multirun whose parent run exists."""
    return read_record(Path(str(HydraConfig.get().sweep.dir))) if _multirun() else None


def job_identity(cfg: DictConfig) -> tuple[str, dict[str, str]]:
    """The run's name and its sweep tags: a sweep's job is named by what it varies and nested under the
    sweep's parent run; a single run is named from its overrides and stays top-level."""
    default = cfg.finetune_strategy.name
    if not HydraConfig.initialized():
        return default, {}
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    if not _multirun():
        return run_name_from_overrides(overrides, default), {}
    tags = {"sweep": str(hydra_cfg.sweep.dir)}
    record = sweep_record()
    if record is None or record["tracking_uri"] != cfg.logger.tracking_uri:
        return run_name_from_overrides(overrides, default), tags
    name = run_name_from_overrides(overrides, f"job {hydra_cfg.job.num}", set(record["swept"]))
    return name, tags | {PARENT_TAG: record["run_id"]}
