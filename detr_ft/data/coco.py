"""A COCO-format detection dataset: a folder of images and an `instances.json`."""

import contextlib
import io
import json
import logging
from pathlib import Path

import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from detr_ft.data.categories import CategoryMap
from detr_ft.data.images import BadImageError, load_rgb
from detr_ft.data.sampling import Draw
from detr_ft.data.transforms import apply

log = logging.getLogger(__name__)


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


def describe(annotation: dict) -> str:
    """How messages name an annotation."""
    return f"annotation id {annotation.get('id')} (image {annotation.get('image_id')})"


def has_valid_bbox(annotation: dict) -> bool:
    bbox = annotation.get("bbox")
    return isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)


def annotation_problems(annotation: dict, category_ids: set) -> list[str]:
    """What stops one annotation from being trained on (its bbox, its category), each naming the annotation.
    read_annotations raises on the first; `python -m detr_ft.data.check` reports them all."""
    problems = []
    if not has_valid_bbox(annotation):
        problems.append(
            f"{describe(annotation)}: missing or malformed bbox {annotation.get('bbox')!r} "
            "(want [x, y, width, height] numbers)"
        )
    if annotation.get("category_id") not in category_ids:
        problems.append(
            f"{describe(annotation)}: unknown category_id {annotation.get('category_id')!r} "
            f"(the file's categories are {sorted(category_ids, key=str)})"
        )
    return problems


def read_annotations(path: str | Path) -> dict:
    """The annotation file's JSON, with errors that name the file and what is wrong in it."""
    data = load_annotation_file(path)
    category_ids = {category.get("id") for category in data["categories"]}
    for annotation in data["annotations"]:
        problems = annotation_problems(annotation, category_ids)
        if problems:
            raise ValueError(
                f"annotation file {path}: {problems[0]}; run `python -m detr_ft.data.check` for a full report"
            )
    return data


def coco_from_dict(data: dict) -> COCO:
    """A pycocotools COCO index built from already-validated data, without its prints."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoDetection(Dataset):
    """Items are (image float [3, H, W] normalised, target) where target holds `boxes` [N, 4] cxcywh in
    [0, 1] of the transformed image, `labels` int64 [N], `image_id`, `orig_size` and `size` (h, w)."""

    def __init__(
        self,
        images_dir: str | Path,
        annotations_file: str | Path,
        transforms,
        label_mode: str = "contiguous",
        skip_bad_images: bool = False,
        annotations: dict | None = None,
    ):
        """`annotations`: the file's content when the caller has already read it with read_annotations
        (COCO's train file is 450 MB: reading it once matters)."""
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"image folder {self.images_dir} does not exist")
        self.annotations_file = Path(annotations_file)
        self.coco = coco_from_dict(annotations if annotations is not None else read_annotations(annotations_file))
        self.category_map = CategoryMap.from_coco_categories(self.coco.dataset["categories"], label_mode)
        self.image_ids = sorted(self.coco.imgs)
        self.transforms = transforms
        self.skip_bad_images = skip_bad_images
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, item: int | Draw):
        """`item`: an index (augmentation from the global generators) or a `Draw` (index and its own seed)."""
        index, seed = item if isinstance(item, Draw) else (item, None)
        for attempt in range(len(self)):
            image_id = self.image_ids[(index + attempt) % len(self)]
            try:
                return self._load(image_id, seed)
            except BadImageError as error:
                if not self.skip_bad_images:
                    raise BadImageError(f"{error} (set data.skip_bad_images=true to skip such files)") from None
                self.skipped += 1
                log.warning("skipped bad image (%d so far in this worker): %s", self.skipped, error)
        raise BadImageError(f"every image in {self.images_dir} failed to load")

    def _load(self, image_id: int, seed: int | None = None):
        info = self.coco.imgs[image_id]
        image = load_rgb(self.images_dir / info["file_name"])
        annotations = [a for a in self.coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy pixels
        labels = torch.tensor([self.category_map.label_of(a["category_id"]) for a in annotations], dtype=torch.int64)
        orig_size = torch.tensor(image.shape[-2:], dtype=torch.int64)
        image, boxes, labels = apply(self.transforms, image, boxes, labels, seed)
        target = {
            "boxes": boxes,
            "labels": labels,
            "image_id": torch.tensor(image_id, dtype=torch.int64),
            "orig_size": orig_size,
            "size": torch.tensor(image.shape[-2:], dtype=torch.int64),
        }
        return image, target
