"""One tiny dataset (2 classes; train: 4 images of 48x40 px, one without boxes; val: 2) written in each format a
user brings: COCO (Roboflow's export layout), YOLO, Pascal VOC (devkit layout) and a Hugging Face DatasetDict.
The same boxes in every format, so each reads back to the same COCO form."""

import json
from pathlib import Path

from PIL import Image

NAMES = ["cat", "dog"]
WIDTH, HEIGHT = 48, 40
# split -> image file -> [(class id, [x, y, width, height] in pixels)]
BOXES = {
    "train": {
        "a.png": [(0, [4, 6, 20, 16]), (1, [24, 10, 16, 20])],
        "b.jpg": [(1, [2, 2, 10, 10])],
        "c.png": [],
        "d.png": [(0, [10, 8, 30, 24])],
    },
    "val": {"e.png": [(0, [5, 5, 20, 20])], "f.png": [(1, [20, 4, 20, 30])]},
}
FORMATS = ("roboflow", "yolo", "voc", "hf")


def _pixels(index: int) -> Image.Image:
    return Image.new("RGB", (WIDTH, HEIGHT), (30 * index, 120, 200 - 20 * index))


def _image(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _pixels(index).save(path)


def coco_dict(split: str, first_id: int = 0) -> dict:
    """The split in COCO form, category ids from `first_id` (YOLO, VOC and HF number classes from 0)."""
    images, annotations = [], []
    for image_id, (name, boxes) in enumerate(BOXES[split].items(), 1):
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT})
        for category, bbox in boxes:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": category + first_id, "bbox": bbox}
                | {"area": bbox[2] * bbox[3], "iscrowd": 0}
            )
    categories = [{"id": i + first_id, "name": name} for i, name in enumerate(NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(root: Path, first_id: int = 0) -> dict[str, Path]:
    """The plain COCO equivalent: {train,val}/ images and {train,val}.json -> the DetectionDataModule's paths."""
    paths = {}
    for split in BOXES:
        for index, name in enumerate(BOXES[split]):
            _image(root / split / name, index)
        (root / f"{split}.json").write_text(json.dumps(coco_dict(split, first_id)))
        paths |= {f"{split}_images": str(root / split), f"{split}_annotations": str(root / f"{split}.json")}
    return paths


def write_roboflow(root: Path) -> Path:
    """train/, valid/, each with its images and _annotations.coco.json, category 0 naming the dataset."""
    for split, folder in (("train", "train"), ("val", "valid")):
        data = coco_dict(split, first_id=1)
        data["categories"] = [{"id": 0, "name": "pets", "supercategory": "none"}] + [
            category | {"supercategory": "pets"} for category in data["categories"]
        ]
        for index, name in enumerate(BOXES[split]):
            _image(root / folder / name, index)
        (root / folder / "_annotations.coco.json").write_text(json.dumps(data))
    return root


def write_yolo(root: Path) -> Path:
    """data.yaml, images/{train,val}/, labels/{train,val}/ (no label file for the image without boxes)."""
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    for split, files in BOXES.items():
        for index, (name, boxes) in enumerate(files.items()):
            _image(root / "images" / split / name, index)
            lines = [
                f"{c} {(x + w / 2) / WIDTH} {(y + h / 2) / HEIGHT} {w / WIDTH} {h / HEIGHT}"
                for c, (x, y, w, h) in boxes
            ]
            if lines:
                label = root / "labels" / split / Path(name).with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text("\n".join(lines) + "\n")
    return root


def voc_xml(name: str, boxes: list, size: bool = True) -> str:
    objects = "".join(
        f"<object><name>{NAMES[c]}</name><difficult>0</difficult><bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>"
        f"<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"
        for c, (x, y, w, h) in boxes
    )
    size_element = f"<size><width>{WIDTH}</width><height>{HEIGHT}</height><depth>3</depth></size>" if size else ""
    return f"<annotation><filename>{name}</filename>{size_element}{objects}</annotation>"


def write_voc(root: Path) -> Path:
    """The devkit layout: Annotations/, JPEGImages/, ImageSets/Main/{train,val}.txt; corners 1-based."""
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split, files in BOXES.items():
        for index, (name, boxes) in enumerate(files.items()):
            _image(root / "JPEGImages" / name, index)
            (root / "Annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, boxes))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(Path(n).stem for n in files) + "\n")
    return root


def write_hf(root: Path, edit=None) -> Path:
    """A DatasetDict (train, validation) in the DETR guide's form, kept with save_to_disk; `edit(rows)` may change
    the columns ({split name: {column: [value per row]}}) first."""
    import datasets

    features = {
        "image_id": datasets.Value("int64"),
        "image": datasets.Image(),
        "objects": datasets.Sequence(
            {"bbox": datasets.Sequence(datasets.Value("float32")), "category": datasets.ClassLabel(names=NAMES)}
        ),
    }
    rows = {}
    for split, name in (("train", "train"), ("val", "validation")):
        rows[name] = {"image_id": [], "image": [], "objects": []}
        for index, boxes in enumerate(BOXES[split].values()):
            rows[name]["image_id"].append(index + 1)
            rows[name]["image"].append(_pixels(index))  # kept inside the dataset, as PNG bytes
            rows[name]["objects"].append({"bbox": [b for _, b in boxes], "category": [c for c, _ in boxes]})
    if edit is not None:
        edit(rows)
    splits = {
        name: datasets.Dataset.from_dict(columns, features=datasets.Features({k: features[k] for k in columns}))
        for name, columns in rows.items()
    }
    datasets.DatasetDict(splits).save_to_disk(str(root))
    return root


WRITERS = {"roboflow": write_roboflow, "yolo": write_yolo, "voc": write_voc, "hf": write_hf}


def data_keys(kind: str, root: Path) -> list[str]:
    """The command-line keys that read `root` written by WRITERS[kind] (Roboflow's is data=coco's layout)."""
    return [f"data={'coco' if kind == 'roboflow' else kind}", f"data.root={root}"]
