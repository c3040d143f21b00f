"""Reading a COCO annotation file: JSON holding the three lists `images`, `annotations`, `categories`."""

import json
from pathlib import Path

COCO_LISTS = ("images", "annotations", "categories")


def load_annotation_file(path: str | Path) -> dict:
    """The file's JSON if it holds COCO's three lists; FileNotFoundError or ValueError naming the file if not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"annotation file {path} is not valid JSON: {error}") from None
    missing = [key for key in COCO_LISTS if not isinstance(data, dict) or not isinstance(data.get(key), list)]
    if missing:
        raise ValueError(
            f"annotation file {path} has no {missing} list(s) (COCO format needs images, annotations, categories)"
        )
    return data
