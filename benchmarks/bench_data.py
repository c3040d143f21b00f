"""Data speed: decoding (torchvision.io vs PIL) and train-loader throughput (images/s) with 0 and 2
workers, on the synthetic data (128 px PNG, CPU sizes) and on larger JPEGs (640x480, COCO sizes and
the paper's crop augmentation).

    python -m benchmarks data
"""

import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from detr_ft.data.datamodule import DetectionDataModule
from detr_ft.data.images import _decode_pil, _decode_torchvision
from detr_ft.data.synthetic import ensure_dataset

BATCHES = 40
BATCH_SIZE = 8


def _jpeg_dataset(synthetic: Path, folder: Path, count: int = 96) -> tuple[Path, Path]:
    """640x480 JPEGs made by enlarging synthetic images (photo-like file sizes, unlike pure noise)."""
    source = json.loads((synthetic / "annotations" / "instances_train.json").read_text())
    (folder / "images").mkdir(parents=True)
    scale_x, scale_y = 640 / source["images"][0]["width"], 480 / source["images"][0]["height"]
    images = source["images"][:count]
    for image in images:
        pixels = Image.open(synthetic / "train" / image["file_name"]).convert("RGB").resize((640, 480), Image.BILINEAR)
        image["file_name"] = image["file_name"].replace(".png", ".jpg")
        pixels.save(folder / "images" / image["file_name"], quality=90)
        image["width"], image["height"] = 640, 480
    kept = {image["id"] for image in images}
    annotations = [dict(a) for a in source["annotations"] if a["image_id"] in kept]
    for annotation in annotations:
        x, y, w, h = annotation["bbox"]
        annotation["bbox"] = [x * scale_x, y * scale_y, w * scale_x, h * scale_y]
    path = folder / "instances.json"
    path.write_text(json.dumps({**source, "images": images, "annotations": annotations}))
    return folder / "images", path


def _decode_rate(files: list[Path], decode) -> float:
    """Images/s of one decoder over the files' bytes (already in memory: decoding only)."""
    blobs = [f.read_bytes() for f in files]
    decode(blobs[0])
    start = time.perf_counter()
    for blob in blobs:
        decode(blob)
    return len(blobs) / (time.perf_counter() - start)


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
        start = time.perf_counter()
        synthetic = ensure_dataset(Path(tmp), "v1", 1000, 10, 128, 0)
        print(f"generating data=synthetic (1,010 images of 128 px): {time.perf_counter() - start:.1f} s")
        jpeg_images, jpeg_annotations = _jpeg_dataset(synthetic, Path(tmp) / "jpeg")

        print(f"\n{'decoding':28} {'torchvision':>11} {'PIL':>9}  images/s, one process")
        for name, files in (
            ("128 px PNG", sorted((synthetic / "train").glob("*.png"))[:300]),
            ("640x480 JPEG", sorted(jpeg_images.glob("*.jpg"))),
        ):
            print(f"{name:28} {_decode_rate(files, _decode_torchvision):11.0f} {_decode_rate(files, _decode_pil):9.0f}")

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
        print(f"\n{'train loader':28} {'workers':>7} {'images/s':>9}  batch {BATCH_SIZE}")
        for name, paths in cases.items():
            for workers in (0, 2):
                module = DetectionDataModule(
                    val_images=paths["train_images"],
                    val_annotations=paths["train_annotations"],
                    batch_size=BATCH_SIZE,
                    num_workers=workers,
                    **paths,
                )
                print(f"{name:28} {workers:7} {_throughput(module):9.1f}", flush=True)


if __name__ == "__main__":
    main()
