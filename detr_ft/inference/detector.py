"""A detr_ft checkpoint ready to run on images: the model rebuilt from the config stored in the file (only
`detr_ft.model.*` targets), its category map and the validation-time resize. `detr_ft.predict` and
`detr_ft.export` are command-line shells over it."""

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from detr_ft.checkpoints import checkpoint_file
from detr_ft.checkpoints.weight_layouts import CheckpointError
from detr_ft.data.categories import CategoryMap
from detr_ft.data.transforms import apply, make_eval_transforms
from detr_ft.model.classification import form_of_head
from detr_ft.model.postprocess import postprocess


class Detector:
    """A detr_ft checkpoint ready to run: the model rebuilt from the config stored in the file, its
    category map and the validation-time resize."""

    def __init__(self, checkpoint: str | Path, device: str = "auto"):
        path = checkpoint_file.in_run_folder(checkpoint, "best")  # a run folder: its best checkpoint (idempotent)
        saved = checkpoint_file.read(path)  # weights_only: nothing in the file is executed
        if not saved.config_yaml or not saved.category_map:
            raise CheckpointError(
                f"{path} is not a detr_ft checkpoint (it lacks the stored config and category map); predict "
                "needs a .ckpt written by `python -m detr_ft` or `python -m detr_ft.export`"
            )
        config = saved.config
        self.category_map = CategoryMap.from_dict(saved.category_map)
        self.device = _device(device)
        self.model = _build_model(config, self.category_map.num_classes, path)
        _check_head_form(saved.model_state, self.model, path)
        try:
            self.model.load_state_dict(saved.model_state)  # exported half weights are cast to the model's dtype
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
        """uint8 [3, H, W] -> {scores [D], labels [D], boxes [D, 4] xyxy in the image's own pixels} (D detections:
        one per query for the softmax head, the best (query, class) pairs for the sigmoid one, detections.py)."""
        no_boxes, no_labels = torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
        resized, _, _ = apply(self.transforms, image, no_boxes, no_labels)
        outputs = self.model(resized[None].to(self.device))
        detections = postprocess(outputs, [torch.tensor(image.shape[1:])], self.model.classification)[0]
        return {k: v.cpu() for k, v in detections.items()}


def _check_head_form(state: dict, model: torch.nn.Module, path: Path) -> None:
    """The class head's row count must fit the form the stored config names (softmax K+1, sigmoid K): scores
    computed in the wrong form would look plausible and be wrong."""
    rows = state.get("class_head.weight")
    found = form_of_head(len(rows), model.num_classes) if rows is not None else model.classification
    if found != model.classification:
        raise CheckpointError(
            f"{path}: its class head has {len(rows)} rows for {model.num_classes} categories, which is "
            f"{f'the {found} form' if found else 'neither form'}, but its stored config says "
            f"model.classification={model.classification}"
        )


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
