"""Pascal VOC data: one XML file per image (`<filename>`, `<size>` with `<width>` and `<height>`, an `<object>`
per box with its class `<name>` and `<bndbox>` xmin, ymin, xmax, ymax). Two layouts: the VOC devkit's
(Annotations/, JPEGImages/, ImageSets/Main/{train,val,test}.txt listing each split's files) and one folder per
split holding images and XML side by side (train/, valid/ or val/, test/: Roboflow's VOC export).

VOC's coordinates are 1-based pixel indices, inclusive: xmin=1, xmax=W covers the whole image, so the box is
[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1] (as Detectron2 reads it). `<difficult>` objects train
like the others. Classes: `data.classes` in that order when given (a name outside it is an error), else every
name found, sorted; their ids count from 0.
"""

import glob
from functools import partial
from pathlib import Path
from xml.etree import ElementTree

from detr_ft.data.formats import DatasetError, Split

SPLIT_FOLDERS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}
CORNERS = ("xmin", "ymin", "xmax", "ymax")
SIZE = "want <size><width>W</width><height>H</height></size>, the image's pixels"


def _layout(root: Path) -> dict[str, tuple[Path, list[Path]]]:
    """{split: (images folder, its XML files)}."""
    lists = root / "ImageSets" / "Main"
    if lists.is_dir():
        found = {}
        for split in ("train", "val", "test"):
            listed = lists / f"{split}.txt"
            if listed.is_file():
                names = listed.read_text(encoding="utf-8", errors="replace").split()
                found[split] = (root / "JPEGImages", [root / "Annotations" / f"{name}.xml" for name in names])
        return found
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        folder = next((root / name for name in names if (root / name).is_dir()), None)
        if folder is not None:
            found[split] = (folder, sorted(folder.rglob("*.xml")))
    return found


def _parse(xml: Path) -> tuple[ElementTree.Element | None, str | None]:
    """(the XML's root element, None) or (None, what is wrong with the file)."""
    try:
        return ElementTree.parse(xml).getroot(), None
    except ElementTree.ParseError as error:
        return None, f"{xml}: malformed XML ({error})"
    except OSError as error:
        return None, f"{xml}: cannot be read ({error.strerror or error})"


def voc_splits(root: Path, classes: list[str] | None) -> dict[str, Split]:
    layout = _layout(root)
    for split in ("train", "val"):
        if split not in layout:
            raise DatasetError(
                f"data.root={root} has no VOC {split} split: want ImageSets/Main/{split}.txt (with Annotations/ and "
                f"JPEGImages/) or a {'/'.join(SPLIT_FOLDERS[split])} folder of images and XML files"
            )
    parsed = {split: [(xml, *_parse(xml)) for xml in files] for split, (_, files) in layout.items()}
    if classes is None:  # every name of every split, so that all splits share one class list
        trees = [tree for files in parsed.values() for _, tree, _ in files if tree is not None]
        classes = sorted({(obj.findtext("name") or "").strip() for tree in trees for obj in tree.iter("object")} - {""})
    return {
        split: Split(images, root, partial(_read, parsed[split], images, classes))
        for split, (images, _) in layout.items()
    }


def _number(element, key: str) -> float | None:
    try:
        return float(element.findtext(key))
    except (TypeError, ValueError):
        return None


def _objects(tree, xml: Path, image_id: int, ids: dict[str, int], annotations: list, errors: list[str]) -> None:
    for number, obj in enumerate(tree.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        where = f"{xml} <object> {number} ({name!r})"
        box = obj.find("bndbox")
        corners = [_number(box, key) for key in CORNERS] if box is not None else [None] * 4
        if name not in ids:
            errors.append(f"{where}: unknown class <name> {name!r} (want one of {sorted(ids, key=ids.get)})")
        elif None in corners:
            errors.append(f"{where}: want <bndbox> with numeric <xmin>, <ymin>, <xmax>, <ymax>")
        elif corners[2] < corners[0] or corners[3] < corners[1]:
            values = ", ".join(f"{key} {value:g}" for key, value in zip(CORNERS, corners, strict=True))
            errors.append(f"{where}: <bndbox> {values}: want xmin <= xmax and ymin <= ymax")
        else:
            x0, y0, x1, y1 = corners
            bbox = [x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": ids[name], "bbox": bbox}
                | {"area": bbox[2] * bbox[3], "iscrowd": 0, "source": where}
            )


def _file_name(tree, xml: Path, images: Path) -> str:
    """`<filename>`, or the image beside the XML of the same name when that names no file."""
    named = (tree.findtext("filename") or "").strip()
    if named and (images / named).is_file():
        return named
    beside = [p for p in xml.parent.glob(f"{glob.escape(xml.stem)}.*") if p.suffix.lower() != ".xml"]
    return beside[0].relative_to(images).as_posix() if beside and beside[0].is_relative_to(images) else named


def _read(parsed: list, images: Path, classes: list[str], report) -> dict:
    ids = {name: index for index, name in enumerate(classes)}
    data = {"images": [], "annotations": [], "categories": [{"id": i, "name": name} for name, i in ids.items()]}
    for image_id, (xml, tree, error) in enumerate(parsed, 1):
        if tree is None:
            report.errors.append(error)
            continue
        size = tree.find("size")
        width, height = (_number(size, "width"), _number(size, "height")) if size is not None else (None, None)
        if size is None:
            report.errors.append(f"{xml}: no <size> element ({SIZE})")
            continue
        if not all(value and value > 0 and value.is_integer() for value in (width, height)):
            report.errors.append(f"{xml}: <size> width {width} and height {height} ({SIZE})")
            continue
        image = {"id": image_id, "file_name": _file_name(tree, xml, images), "width": int(width), "height": int(height)}
        data["images"].append(image | {"source": str(xml)})
        _objects(tree, xml, image_id, ids, data["annotations"], report.errors)
    return data
