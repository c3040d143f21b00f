"""`dataset_overview.png`: what a dataset holds, in one picture: the class counts per split, the objects
per image against the model's query count, the boxes' width/height and centre distributions (train split,
relative to their image), and a grid of train images with their boxes. `python -m detr_ft.check` writes it, and
so does every training run, into its run folder.

Reads the annotations as they are (the transforms play no part), so it shows the data, not the model's view.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from detr_ft.data.formats.coco import load_annotation_file
from detr_ft.data.images import BadImageError, load_rgb

SAMPLES = 8  # images in the grid


@dataclass
class OverviewData:
    class_names: list[str]
    class_counts: dict[str, list[int]] = field(default_factory=dict)  # split -> count per class (class_names order)
    objects_per_image: list[int] = field(default_factory=list)  # train images, crowd boxes left out
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # train: relative cx, cy, w, h
    samples: list[tuple[Path, list[list[float]]]] = field(default_factory=list)  # image file, its xywh pixel boxes


def _annotations(annotations: Path | dict) -> dict:
    return annotations if isinstance(annotations, dict) else load_annotation_file(annotations)


def overview_data(splits: dict[str, tuple[Path, Path | dict]], samples: int = SAMPLES) -> OverviewData:
    """splits: {"train": (images folder, COCO file or its content), "val": ...}, as the datamodule's `paths`."""
    files = {split: _annotations(annotations) for split, (_, annotations) in splits.items()}
    categories = sorted(next(iter(files.values())).get("categories", []), key=lambda c: c["id"])
    order = {category["id"]: index for index, category in enumerate(categories)}
    data = OverviewData(class_names=[str(category.get("name", category["id"])) for category in categories])
    for split, content in files.items():
        counts = [0] * len(categories)
        for annotation in content.get("annotations", []):
            if annotation.get("category_id") in order and not annotation.get("iscrowd", 0):
                counts[order[annotation["category_id"]]] += 1
        data.class_counts[split] = counts
    train = files.get("train") or next(iter(files.values()))
    images_dir = splits["train" if "train" in files else next(iter(files))][0]
    images = {image["id"]: image for image in train.get("images", [])}
    per_image: dict[int, list[list[float]]] = {image_id: [] for image_id in images}
    for annotation in train.get("annotations", []):
        if annotation.get("image_id") in per_image and not annotation.get("iscrowd", 0):
            per_image[annotation["image_id"]].append(annotation["bbox"])
    data.objects_per_image = [len(boxes) for boxes in per_image.values()]
    relative = []
    for image_id, boxes in per_image.items():
        width, height = images[image_id].get("width") or 1, images[image_id].get("height") or 1
        for x, y, w, h in boxes:
            relative.append([(x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
    data.boxes = np.array(relative, dtype=float).reshape(-1, 4)
    chosen = sorted(images)[:samples]
    data.samples = [(Path(images_dir) / images[i]["file_name"], per_image[i]) for i in chosen]
    return data


def draw_overview(data: OverviewData, path: Path, num_queries: int | None = None) -> Path:
    """Four panels of statistics above a row of sample images with their boxes, as a PNG."""
    figure = Figure(figsize=(16, 8))
    grid = figure.add_gridspec(2, max(4, len(data.samples)))
    quarter = grid.ncols // 4
    panels = [figure.add_subplot(grid[0, i * quarter : (i + 1) * quarter]) for i in range(4)]

    positions = np.arange(len(data.class_names))
    width = 0.8 / max(1, len(data.class_counts))
    for index, (split, counts) in enumerate(data.class_counts.items()):
        panels[0].bar(positions + index * width, counts, width, label=split)
    panels[0].set_xticks(positions + width * (len(data.class_counts) - 1) / 2, data.class_names, rotation=45)
    panels[0].set_title("objects per class", fontsize="medium")
    panels[0].legend(fontsize="x-small")

    most = max(data.objects_per_image, default=0)
    panels[1].hist(data.objects_per_image, bins=np.arange(0, max(most, num_queries or 0) + 2) - 0.5)
    if num_queries:
        panels[1].axvline(num_queries, color="red", linestyle="--", label=f"model.num_queries={num_queries}")
        panels[1].legend(fontsize="x-small")
    panels[1].set_title("objects per train image", fontsize="medium")

    cx, cy, w, h = data.boxes.T if len(data.boxes) else (np.zeros(0),) * 4
    panels[2].scatter(w, h, s=3, alpha=0.4)
    panels[2].set(xlim=(0, 1), ylim=(0, 1), xlabel="width / image width", ylabel="height / image height")
    panels[2].set_title("box sizes (train)", fontsize="medium")
    panels[3].hist2d(cx, cy, bins=20, range=[[0, 1], [0, 1]], cmap="Blues")
    panels[3].invert_yaxis()  # image coordinates: y grows downwards
    panels[3].set_title("box centres (train)", fontsize="medium")

    for index, (image_file, boxes) in enumerate(data.samples):
        axes = figure.add_subplot(grid[1, index])
        axes.axis("off")
        try:
            axes.imshow(load_rgb(image_file).permute(1, 2, 0).numpy())
        except BadImageError:  # the check names it; the picture shows the boxes on a blank
            pass
        for x, y, box_w, box_h in boxes:
            axes.add_patch(Rectangle((x, y), box_w, box_h, fill=False, edgecolor="lime", linewidth=1))
        axes.set_title(f"{image_file.name} ({len(boxes)})", fontsize="x-small")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    return path
