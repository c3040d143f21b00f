"""Train-loader throughput (images/s) with 0 and 2 workers, on the synthetic data (128 px PNG) and on
larger JPEGs (640x480), with the training transforms of each data config.

    python -m benchmarks data
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from detr_ft.data.datamodule import DetectionDataModule
from detr_ft.data.synthetic import ensure_dataset

BATCHES = 20


def _jpeg_dataset(folder: Path, count: int = 96) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(1, count + 1):
        pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{i}.jpg", quality=90)
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        annotations.append(
            {"id": i, "image_id": i, "category_id": 1, "bbox": [100, 100, 200, 150], "area": 30000, "iscrowd": 0}
        )
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}))
    return folder / "images", path


def _throughput(module: DetectionDataModule) -> float:
    module.setup("fit")
    loader = module.train_dataloader()
    seen, start = 0, None
    for index, (images, _, _) in enumerate(loader):
        if index == 2:  # skip worker start-up
            start, seen = time.perf_counter(), 0
        seen += images.shape[0]
        if index == BATCHES + 2:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = ensure_dataset(Path(tmp), "v1", 400, 10, 128, 0)
        jpeg_images, jpeg_annotations = _jpeg_dataset(Path(tmp) / "jpeg")
        cases = {
            "synthetic 128px PNG": dict(
                train_images=str(synthetic / "train"),
                train_annotations=str(synthetic / "annotations/instances_train.json"),
                train_scales=[96, 112, 128, 144],
                max_size=160,
                crop=False,
            ),
            "640x480 JPEG, COCO sizes": dict(
                train_images=str(jpeg_images),
                train_annotations=str(jpeg_annotations),
                train_scales=[480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800],
                max_size=1333,
                crop=True,
            ),
        }
        print(f"{'data':28} {'workers':>7} {'images/s':>9}")
        for name, paths in cases.items():
            for workers in (0, 2):
                module = DetectionDataModule(
                    val_images=paths["train_images"],
                    val_annotations=paths["train_annotations"],
                    batch_size=8,
                    num_workers=workers,
                    **paths,
                )
                print(f"{name:28} {workers:7} {_throughput(module):9.1f}", flush=True)


if __name__ == "__main__":
    main()
