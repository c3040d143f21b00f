"""A run's train and val splits as MLflow dataset inputs (the runs table's Dataset column): each split is named
`<dataset>/<split>`, its source is the annotation file's path and its digest a hash of that file's content, so
two runs on different data (or on an edited annotation file) are told apart."""

import hashlib
import warnings
from pathlib import Path

from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

DIGEST_LENGTH = 32  # MLflow's store keeps at most 36 characters of a digest


def annotation_digest(path: str | Path) -> str:
    """The first DIGEST_LENGTH hex digits of the file's sha256 (read in blocks: COCO's files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_LENGTH]


def split_dataset(dataset_name: str, split: str, annotations: str | Path) -> MetaDataset:
    """The metadata-only MLflow dataset of one split: name, source (the annotation file) and content digest."""
    with warnings.catch_warnings():  # MLflow registers its local-file source twice and warns that it is ambiguous
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(annotations).resolve()))
    return MetaDataset(source, name=f"{dataset_name}/{split}", digest=annotation_digest(annotations))


def log_dataset_inputs(logger, dataset_name: str, paths: dict[str, tuple]) -> None:
    """Log the train and val splits of `paths` ({split: (images folder, annotation file)}, the datamodule's)
    as inputs of the logger's run; nothing without MLflow."""
    if logger is None or getattr(logger, "lost", None):
        return
    inputs = [
        DatasetInput(
            Dataset(**split_dataset(dataset_name, split, annotations).to_dict()),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)],
        )
        for split, (_, annotations) in paths.items()
        if split in ("train", "val")
    ]
    logger.experiment.log_inputs(logger.run_id, datasets=inputs)
