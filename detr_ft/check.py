"""`python -m detr_ft.check data=...`: validate a dataset in any format before training on it (a Hydra app over
conf/check.yaml, which composes the main config's `data` group: `data=yolo data.root=/x` works), and write it
out in COCO form on request (`export=coco out=DIR`).

A thin shell over detr_ft/data/checks/, the validator training runs when it builds the datamodule: this prints
every problem of every split where training stops at the first few, and decodes every image where training
reads headers only. Exits 1 when there are errors. The data modules load torch, so they are imported inside
the functions: `--help` stays light.
"""

import sys

from omegaconf import DictConfig, OmegaConf

from detr_ft.config.command_line import hydra_app
from detr_ft.config.schema import exit_if_missing

SPLIT_KEYS = ("format", "root", "classes", "cache_dir")
PATH_KEYS = ("train_images", "train_annotations", "val_images", "val_annotations", "test_images", "test_annotations")


def splits_from_config(data_cfg: DictConfig) -> dict:
    """{split: detr_ft.data.formats.Split} of a `data` config, before any is read (so that the report lists
    everything wrong with them): a DetectionDataModule config's keys, range-checked as training checks them;
    otherwise its datamodule's (synthetic data is generated on first use)."""
    from hydra.utils import instantiate

    from detr_ft.data.checks.settings import check_settings
    from detr_ft.data.formats import find_splits

    if "format" not in data_cfg and "train_annotations" not in data_cfg:
        return instantiate(data_cfg, batch_size=1, num_workers=0).splits
    values = {key: value for key, value in OmegaConf.to_container(data_cfg, resolve=True).items() if key != "_target_"}
    check_settings(**values)
    return find_splits(**{key: values[key] for key in (*SPLIT_KEYS, *PATH_KEYS) if key in values})


@hydra_app("check")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.check")
    from hydra.errors import InstantiationException

    from detr_ft.data.checks.report import report
    from detr_ft.data.formats.export import export_coco
    from detr_ft.data.overview import draw_overview, overview_data

    if cfg.export not in (None, "coco") or (cfg.export and not cfg.out):
        sys.exit(f"error: export={cfg.export} out={cfg.out}: want export=coco out=DIR (a new or empty folder)")
    try:
        splits = splits_from_config(cfg.data)
    except InstantiationException as error:
        sys.exit(f"error: {error.__cause__ or error}")
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    errors, reports = report(splits, num_queries=cfg.model.num_queries, decode=cfg.decode)
    data = {split: (splits[split].images, result.data) for split, result in reports.items()}
    if not errors and cfg.export:
        try:
            print(f"exported in COCO form: {export_coco(data, cfg.out)} (read it with data=coco data.root=...)")
        except (OSError, ValueError) as error:
            sys.exit(f"error: {error}")
    if not errors and cfg.overview:  # class counts, objects per image, box sizes and centres, sample images
        picture = draw_overview(overview_data(data), cfg.overview, cfg.model.num_queries)
        print(f"overview: {picture}")
    print("dataset OK" if not errors else f"dataset has {errors} error(s)")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
