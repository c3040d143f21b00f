"""A tiny COCO-format folder for the validation tests: 6 images of 64x64 px (PNG), 2 categories, one box each,
written as the test then breaks it (`edit` receives the annotation dict before it is saved)."""

import json
import struct
import zlib
from pathlib import Path

from PIL import Image

SIZE = 64


def tiny_coco_dict(images: int = 6) -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": SIZE, "height": SIZE} for i in range(1, images + 1)],
        "annotations": [
            {"id": 10 + i, "image_id": i, "category_id": 1 + i % 2, "bbox": [8, 8, 24, 20], "area": 480, "iscrowd": 0}
            for i in range(1, images + 1)
        ],
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}],
    }


def write_tiny_coco(folder: Path, edit=None, name: str = "instances.json") -> tuple[Path, Path]:
    """-> (images folder, annotation file); `edit(data)` may change the dict (and the folder) before saving."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    data = tiny_coco_dict()
    for image in data["images"]:
        Image.new("RGB", (SIZE, SIZE), (40 * image["id"], 90, 160)).save(images / image["file_name"])
    if edit is not None:
        edit(data)
    (folder / name).write_text(json.dumps(data))
    return images, folder / name


def write_damaged_png(path: Path) -> None:
    """A 64x64 PNG (as the tiny folder's) whose chunk checksums are valid but whose pixel rows libpng rejects
    (bad filter bytes): its header reads fine; torchvision 0.29's decoder kills the process on it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(bytes([7]) + bytes(range(3 * SIZE)) for _ in range(SIZE))  # filter type 7 does not exist
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
