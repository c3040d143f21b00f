"""MLflow tracking, one concern per module:

- store.py: the store made ready (tables, experiment), reachability, sqlite's locks, runs whose process died;
- logger.py: the run's logger (`logger=mlflow` / `logger=none`) and the reference a checkpoint keeps of its run;
- recording.py: tags, end-of-run artifacts, a failed run, the git commit;
- names.py: run names from the overrides and a sweep job's identity (its parent run, from the sweep record);
- sweep_parent.py: the Hydra callback whose parent run holds a sweep's jobs and its comparison;
- lookup.py: runs by reference, experiment or sweep; checkpoint references (`runs:/...`, `models:/...`, a run id);
- datasets.py: the train and val splits as MLflow dataset inputs (name, annotation file, content digest);
- comparison.py: the table and plot of runs ranked by a metric (`python -m detr_ft.compare`);
- tags.py: the tag names these share.

Conventions (read by the comparison too): one run per Hydra job; params are the flattened resolved config
(`train/learning_rate`, `module/backbone_learning_rate`); tags `strategy` (what ran), `strategy_preset`,
`schedule`, `dataset`, `model`, `sweep`, `git_commit`, `monitor`, `eval_weights` (ema | raw: what val/* scored),
`best_checkpoint`, `best_epoch`, `stop_reason`, `model_uri` (the logged model); failed runs are FAILED with
`status_error`. A sweep's jobs are children (`mlflow.parentRunId`) of a parent run tagged `detr_ft.kind=sweep`
(and `registered_model` when it registered its best job). Inputs: the train and val splits as datasets.

Below are the names the training recipe uses (and conf/logger/*.yaml's targets).
"""

from detr_ft.tracking.datasets import log_dataset_inputs
from detr_ft.tracking.logger import mlflow_logger, no_logger, run_reference
from detr_ft.tracking.lookup import is_run_reference, resolve_checkpoint_reference
from detr_ft.tracking.names import job_identity
from detr_ft.tracking.recording import git_commit, log_artifact, log_run_end, mark_failed, set_tags
from detr_ft.tracking.sweep_parent import after_resumed_job

__all__ = [
    "after_resumed_job",
    "git_commit",
    "is_run_reference",
    "job_identity",
    "log_artifact",
    "log_dataset_inputs",
    "log_run_end",
    "mark_failed",
    "mlflow_logger",
    "no_logger",
    "resolve_checkpoint_reference",
    "run_reference",
    "set_tags",
]
