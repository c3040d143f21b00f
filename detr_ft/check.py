"""`python -m detr_ft.check data=...`: validate a COCO-format dataset before training on it (a Hydra app over
conf/check.yaml, which composes the main config's `data` group: `data=coco data.root=/x` works).

A thin shell over detr_ft/data/validation.py, the validator training runs when it builds the datamodule:
this prints every problem of every split (detr_ft/data/report.py) where training stops at the first few.
Exits 1 when there are errors.
"""

import sys
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from detr_ft.command_line import hydra_app
from detr_ft.config import exit_if_missing

PATH_KEYS = ("train_images", "train_annotations", "val_images", "val_annotations")


def splits_from_config(data_cfg: DictConfig) -> dict[str, tuple[Path, Path]]:
    """The splits a `data` config points at: a COCO-style config's path keys as they are (so that the report
    lists everything wrong with the files), otherwise its datamodule's `paths` (synthetic data is generated on
    first use)."""
    from detr_ft.data.datamodule import split_paths  # torch: not at the top, as in main()

    if all(key in data_cfg for key in PATH_KEYS):
        test = {key: data_cfg.get(key) for key in ("test_images", "test_annotations")}
        return split_paths(*(data_cfg[key] for key in PATH_KEYS), **test)
    return instantiate(data_cfg, batch_size=1, num_workers=0).paths


@hydra_app("check")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.check")
    # Imported when the command runs: `--help` and a misspelt key's error load no torch or MLflow.
    from detr_ft.data.overview import draw_overview, overview_data
    from detr_ft.data.report import report

    try:
        splits = splits_from_config(cfg.data)
    except InstantiationException as error:
        sys.exit(f"error: {error.__cause__ or error}")
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    errors = report(splits, num_queries=cfg.model.num_queries)
    if not errors and cfg.overview:  # class counts, objects per image, box sizes and centres, sample images
        picture = draw_overview(overview_data(splits), Path(cfg.overview), cfg.model.num_queries)
        print(f"overview: {picture}")
    print("dataset OK" if not errors else f"dataset has {errors} error(s)")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
