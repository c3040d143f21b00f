"""`python -m detr_ft.compare [sweep=ID] [runs=[ID,...]] [metric=val/mAP] [output=DIR]
[logger.tracking_uri=sqlite:///mlflow.db] [logger.experiment_name=detr_ft]`
(a Hydra app over conf/compare.yaml: `--help` lists the keys, `--cfg job` prints them)

A table of runs sorted by their best value of `metric` (best first) and a PNG of the metric per
epoch, written to `output` (default `comparisons/<sweep or experiment>`) and logged to MLflow: to the
sweep's parent run when the runs are one sweep's jobs, else to a run tagged as a comparison. With no
selection: the newest sweep of the experiment, else the experiment. `sweep=` also takes the parent run's id.
Runs that differ only by `train.seed` are also
shown as one configuration each (mean and spread of their best value), with whether the best one's lead over the
runner-up exceeds that spread. The work is detr_ft/tracking/comparison.py's.
"""

import sys

from omegaconf import DictConfig, OmegaConf

from detr_ft.config.command_line import hydra_app


@hydra_app("compare")
def main(cfg: DictConfig) -> None:
    # Imported when the command runs: `--help` and a misspelt key's error load no torch or MLflow.
    from detr_ft.tracking.comparison import compare, format_seed_table, format_table, has_seed_repeats, seed_groups

    runs = OmegaConf.to_container(cfg.runs) if cfg.runs else None
    try:
        rows, plot = compare(
            cfg.sweep, cfg.logger.experiment_name, runs, cfg.metric, cfg.logger.tracking_uri, cfg.output
        )
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(format_table(rows, cfg.metric))
    groups = seed_groups(rows)
    if has_seed_repeats(groups):  # jobs that differ only by train.seed: is the winner ahead of the seed noise?
        print("\n" + format_seed_table(groups, cfg.metric))
    print(f"\nplot: {plot}")


if __name__ == "__main__":
    main()
