"""The short table printed at the end of a run: the best epoch and its metrics, the final metrics, which
weights they came from, why the run stopped, the checkpoints and the MLflow run. Built from the trainer's
`callback_metrics` and the callbacks' own state, never from file names."""

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl

from detr_ft.training.callbacks import RunCallbacks
from detr_ft.training.evaluation.per_class import summary_lines
from detr_ft.training.guards.early_stopping import stop_reason


@dataclass
class RunSummary:
    monitor: str
    best_value: float | None
    best_epoch: int | None
    best_metrics: dict  # val/* metrics of the best epoch
    final_metrics: dict  # val/* metrics of the last validation
    best_checkpoint: str
    last_checkpoint: str
    run_dir: str
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    class_head: str | None = None  # "loaded" | "re-initialised" when weights came from train.checkpoint_path
    commands: dict[str, str] = field(default_factory=dict)  # what to type next: fine-tune from it, resume it
    stop_reason: str | None = None  # early stop (epoch, patience, best), or the epoch limit
    eval_weights: str = "raw"  # the weights val/* metrics came from: "ema" (train.ema_decay) or "raw"
    per_class: list[dict] = field(default_factory=list)  # per-class AP rows of the evaluation's best epoch
    per_class_epoch: int | None = None
    tracking_note: str | None = None  # set when MLflow missed part of the run (server gone mid-run)

    @classmethod
    def from_trainer(
        cls, trainer: pl.Trainer, callbacks: RunCallbacks, logger=None, tracking_uri: str | None = None
    ) -> "RunSummary":
        best, last, evaluation = callbacks.best_checkpoint, callbacks.last_checkpoint, callbacks.evaluation
        score = best.best_model_score
        ema = bool(callbacks.ema and callbacks.ema.enabled)
        return cls(
            monitor=best.monitor,
            best_value=float(score) if score is not None else None,
            best_epoch=best.best_epoch,
            best_metrics=dict(best.best_metrics),
            final_metrics={k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
            best_checkpoint=best.best_model_path,
            last_checkpoint=last.best_model_path,  # its "best" is simply its newest
            run_dir=str(trainer.default_root_dir),
            mlflow_run_id=logger.run_id if logger is not None else None,
            tracking_uri=tracking_uri if logger is not None else None,
            stop_reason=stop_reason(trainer, callbacks.early_stopping),
            eval_weights="ema" if ema else "raw",
            per_class=list(evaluation.best_per_class) if evaluation else [],
            per_class_epoch=evaluation.best_epoch if evaluation else None,
        )

    @classmethod
    def after_fit(
        cls,
        trainer: pl.Trainer,
        callbacks: RunCallbacks,
        logger,
        tracking_uri: str,
        weight_tags: dict[str, str],
        overrides: list[str],
    ) -> "RunSummary":
        """The summary of a finished fit, with what to type next (from the run's own command-line overrides)."""
        summary = cls.from_trainer(trainer, callbacks, logger, tracking_uri)
        summary.tracking_note = logger.status_note() if logger is not None else None
        summary.class_head = weight_tags.get("class_head")
        summary.commands = next_commands(str(Path(summary.run_dir).resolve()), overrides)
        return summary

    def tags(self) -> dict[str, str]:
        found = {"best_checkpoint": self.best_checkpoint, "last_checkpoint": self.last_checkpoint}
        if self.best_epoch is not None:
            found["best_epoch"] = str(self.best_epoch)
        if self.stop_reason:
            found["stop_reason"] = self.stop_reason
        return found


def shell_override(key: str, value: str) -> str:
    """`key=value` as one POSIX-shell word that Hydra reads back as exactly `value`: values with characters
    Hydra's grammar treats specially (`=` in the guide's `best_epoch=6-...ckpt`, spaces, brackets) are
    double-quoted for Hydra, then the whole word is single-quoted for the shell."""
    plain = all(c.isalnum() or c in "/._-+~:@%" for c in value)
    text = value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return shlex.quote(f"{key}={text}")


def next_commands(run_dir: str, overrides: list[str]) -> dict[str, str]:
    """The commands that fine-tune from this run (its best checkpoint) and resume it (its last.ckpt, with the
    run's own overrides), each correctly quoted for a POSIX shell."""
    own = [o for o in overrides if not o.startswith(("train.checkpoint_path=", "train.resume_from=", "hydra."))]
    return {
        "fine-tune from it": f"python -m detr_ft {shell_override('train.checkpoint_path', run_dir)}",
        "resume it": " ".join(
            ["python -m detr_ft", *map(shlex.quote, own), shell_override("train.resume_from", run_dir)]
        ),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_summary(summary: RunSummary) -> None:
    best, final = summary.best_metrics, summary.final_metrics
    rows = [
        (f"best {summary.monitor}", f"{_fmt(summary.best_value)} (epoch {summary.best_epoch})"),
        ("its val/mAP, mAP50", f"{_fmt(best.get('val/mAP'))}, {_fmt(best.get('val/mAP50'))}"),
        ("final val/mAP, mAP50", f"{_fmt(final.get('val/mAP'))}, {_fmt(final.get('val/mAP50'))}"),
        ("val metrics from", "EMA weights (train.ema_decay)" if summary.eval_weights == "ema" else "raw weights"),
        ("stopped", summary.stop_reason or "n/a"),
        ("best checkpoint", summary.best_checkpoint or "n/a"),
        ("last checkpoint", summary.last_checkpoint or "n/a"),
        ("run folder", summary.run_dir),
    ]
    if summary.class_head:
        rows.append(("class head", summary.class_head))
    if summary.mlflow_run_id:
        rows.append(("MLflow run id", summary.mlflow_run_id))
        if summary.tracking_note:
            rows.append(("MLflow record", summary.tracking_note))
        if summary.tracking_uri.startswith("http"):
            rows.append(("open MLflow UI", summary.tracking_uri))
        else:
            rows.append(("open MLflow UI", f"mlflow ui --backend-store-uri {summary.tracking_uri}  (or make ui)"))
    rows += list(summary.commands.items())
    width = max(len(key) for key, _ in rows)
    line = "-" * min(100, width + 3 + max(len(value) for _, value in rows))  # long commands wrap, the rule need not
    print(f"\n{line}\ndetr_ft run summary\n{line}")
    for key, value in rows:
        print(f"{key.ljust(width)} : {value}")
    per_class = summary_lines(summary.per_class)
    if per_class:
        print(f"per-class AP at epoch {summary.per_class_epoch}, best first:")
        print("\n".join(per_class))
    print(line)
