"""`python -m detr_ft.predict checkpoint=PATH input=FOLDER_OR_IMAGE [threshold=0.7] [output=predictions]
[device=auto]` (a Hydra app over conf/predict.yaml: `--help` lists the keys, `--cfg job` prints them)

Runs a detr_ft checkpoint (a training `.ckpt` or a `detr_ft.export` copy) on one image or on every image
of a folder (jpg, jpeg, png, bmp, webp; not its sub-folders) and writes, into the output folder:
`detections.json` (COCO results format plus `file_name` and `category_name`; boxes in the original
image's pixels, category ids of the annotation file the model was trained on) and a copy of each image
with its boxes, class names and scores drawn. Input images are never modified; an existing non-empty
output folder is never written into (a numbered sibling, `predictions_1`, ... is used instead).
"""

import json
import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from detr_ft.command_line import hydra_app
from detr_ft.config import exit_if_missing
from detr_ft.data.categories import CategoryMap
from detr_ft.data.images import BadImageError, load_rgb
from detr_ft.data.transforms import apply, make_eval_transforms
from detr_ft.model.weight_layouts import CheckpointError
from detr_ft.training import checkpoints
from detr_ft.training.detections import postprocess, to_coco_results
from detr_ft.training.pictures import PREDICTION_COLOUR, draw_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class Detector:
    """A detr_ft checkpoint ready to run: the model rebuilt from the config stored in the file, its
    category map and the validation-time resize."""

    def __init__(self, checkpoint: str | Path, device: str = "auto"):
        path = checkpoints.in_run_folder(checkpoint, "best")  # a run folder: its best checkpoint (idempotent)
        saved = checkpoints.read(path)  # weights_only: nothing in the file is executed
        if not saved.config_yaml or not saved.category_map:
            raise CheckpointError(
                f"{path} is not a detr_ft checkpoint (it lacks the stored config and category map); predict "
                "needs a .ckpt written by `python -m detr_ft` or `python -m detr_ft.export`"
            )
        config = OmegaConf.create(saved.config_yaml)
        self.category_map = CategoryMap.from_dict(saved.category_map)
        self.device = _device(device)
        self.model = _build_model(config, self.category_map.num_classes, path)
        try:
            self.model.load_state_dict(
                saved.model_state
            )  # exported half-precision weights are cast to the model's dtype
        except RuntimeError as error:
            raise CheckpointError(
                f"{path}: the weights do not fit the model its own stored config describes: {error}"
            ) from None
        self.model.eval().to(self.device)
        data = config.get("data") or {}
        missing = [key for key in ("eval_scale", "max_size") if data.get(key) is None]
        if missing:
            raise CheckpointError(f"{path}: the stored config has no data.{missing[0]} (the validation image size)")
        self.transforms = make_eval_transforms(int(data["eval_scale"]), int(data["max_size"]))

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> dict:
        """uint8 [3, H, W] -> {scores [Q], labels [Q], boxes [Q, 4] xyxy in the image's own pixels}."""
        no_boxes, no_labels = torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
        resized, _, _ = apply(self.transforms, image, no_boxes, no_labels)
        outputs = self.model(resized[None].to(self.device))
        return {k: v.cpu() for k, v in postprocess(outputs, [torch.tensor(image.shape[1:])])[0].items()}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device={name!r} is not valid; use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name} was asked for but no CUDA GPU is available; use device=cpu")
    return torch.device(name)


def _build_model(config, num_classes: int, path: Path) -> torch.nn.Module:
    """instantiate(config.model) after checking that every `_target_` is one of our model classes: a
    checkpoint is data, and its config must not name arbitrary callables to run."""
    if config.get("model") is None:
        raise CheckpointError(f"{path}: the stored config has no model section")
    model_cfg = OmegaConf.to_container(config.model, resolve=True)

    def check(node):
        if isinstance(node, dict):
            target = node.get("_target_")
            if target is not None and not str(target).startswith("detr_ft.model."):
                raise CheckpointError(
                    f"{path}: refusing model config target {target!r} (only detr_ft.model.* may be built)"
                )
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(model_cfg)
    if isinstance(model_cfg.get("backbone"), dict):
        model_cfg["backbone"]["weights"] = None  # the checkpoint supplies them: no ImageNet download
    return instantiate(model_cfg, num_classes=num_classes)


def find_images(source: str | Path) -> list[Path]:
    """One image file, or a folder's image files (sorted by name, not recursive)."""
    source = Path(source).expanduser()
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"input={source} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"input={source} does not exist (give an image file or a folder of images)")
    images = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"input folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def fresh_output_dir(output: str | Path) -> Path:
    """`output` if it is missing or empty, else the first missing `<output>_N` beside it: an earlier run's
    results, or a folder of the user's own images, are never overwritten."""
    output = Path(output).expanduser()
    candidate, number = output, 0
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = output.with_name(f"{output.name}_{number}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def predict(
    checkpoint: str | Path,
    input: str | Path,
    threshold: float = 0.7,
    output: str | Path = "predictions",
    device: str = "auto",
) -> Path:
    """Detect objects in `input` (an image or a folder) with `checkpoint`; returns the output folder,
    which holds detections.json and the drawn copies of the images."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold} must be between 0 and 1")
    checkpoint = checkpoints.in_run_folder(checkpoint, "best")  # a run folder: its best checkpoint
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint={checkpoint} does not exist")
    images = find_images(input)
    detector = Detector(checkpoint, device)
    folder = fresh_output_dir(output)
    names = detector.category_map.id_names
    results = []
    skipped = []
    for image_id, path in enumerate(images, start=1):
        try:
            image = load_rgb(path)
        except BadImageError as error:  # one unreadable file should not cost the whole folder's results
            print(f"skipped: {error}", file=sys.stderr)
            skipped.append(path.name)
            continue
        detections = detector(image)
        keep = detections["scores"] >= threshold
        kept = {key: value[keep] for key, value in detections.items()}
        found = to_coco_results([kept], [image_id], detector.category_map)
        for result in found:
            result.update(file_name=path.name, category_name=names.get(result["category_id"], "unknown"))
        results += found
        labels = [f"{r['category_name']} {r['score']:.2f}" for r in found]
        drawn = draw_boxes(image, kept["boxes"], labels, PREDICTION_COLOUR)
        _save_copy(drawn, folder / path.name)
        print(f"{path.name}: {len(found)} detections")
    (folder / "detections.json").write_text(json.dumps(results, indent=1))
    print(
        f"wrote {len(results)} detections for {len(images) - len(skipped)} images to {folder}"
        + (f"; skipped {len(skipped)} unreadable: {skipped}" if skipped else "")
    )
    if len(skipped) == len(images):
        raise ValueError(f"none of the input images could be read: {skipped}")
    return folder


def _save_copy(image: torch.Tensor, path: Path) -> None:
    """uint8 [3, H, W] -> an image file in the format its suffix names (lossy ones at high quality)."""
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    if path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        picture.save(path, quality=95)
    else:
        picture.save(path)


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    exit_if_missing(cfg, "detr_ft.predict")
    try:
        predict(cfg.checkpoint, cfg.input, cfg.threshold, cfg.output, cfg.device)
    except (FileNotFoundError, ValueError) as error:  # CheckpointError and BadImageError are ValueErrors
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
