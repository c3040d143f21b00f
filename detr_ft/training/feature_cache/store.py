"""The backbone feature cache's lookup (detr_ft.training.feature_cache.callback explains the key and why it is exact):
per-image features by key in a folder shared between processes, written atomically, plus a bounded in-memory
copy; and the fingerprint that names a backbone's group of files."""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from detr_ft.checkpoints.atomic_write import atomic_path, write_text_atomically
from detr_ft.model.backbone import downsample_mask

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1  # bump when the file layout or the key changes
DEFAULT_MEMORY_BYTES = 2 << 30


def backbone_fingerprint(backbone: torch.nn.Module) -> str:
    """sha256 of what decides the backbone's output: its module tree (strides, dilations, norms), its
    zero_padding setting and every tensor of its state dict."""
    digest = hashlib.sha256()
    described = {"class": type(backbone).__qualname__, "repr": repr(backbone)}
    described["zero_padding"] = getattr(backbone, "zero_padding", None)
    digest.update(json.dumps(described, sort_keys=True).encode())
    for name, tensor in sorted(backbone.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_identity(path: Path) -> list:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


class FeatureStore:
    """Tensors by key: a folder of files (shared between processes) and a bounded in-memory copy."""

    def __init__(self, directory: str | Path, memory_bytes: int = DEFAULT_MEMORY_BYTES):
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"train.feature_cache_dir={self.directory} cannot be created ({error}); set it to a writable folder"
            ) from None
        if not os.access(self.directory, os.W_OK):
            raise ValueError(f"train.feature_cache_dir={self.directory} is not writable; set it to a writable folder")
        self.memory: dict[str, torch.Tensor] = {}
        self.memory_bytes, self.memory_used = memory_bytes, 0
        self._write_failed = False

    def path(self, group: str, key: str) -> Path:
        return self.directory / group / key[:2] / f"{key}.pt"

    def get(self, group: str, key: str) -> torch.Tensor | None:
        if key in self.memory:
            return self.memory[key]
        path = self.path(group, key)
        if not path.is_file():
            return None
        try:
            tensor = torch.load(path, map_location="cpu", weights_only=True)["features"]
        except Exception as error:  # a file from a crashed machine or an older format: recompute it
            log.warning("feature cache: ignoring unreadable %s (%s); it will be recomputed", path, error)
            return None
        self._remember(key, tensor)
        return tensor

    def put(self, group: str, key: str, tensor: torch.Tensor) -> None:
        """Store a CPU tensor that owns its memory (not a view of a batch: torch.save would write the batch)."""
        self._remember(key, tensor)
        path = self.path(group, key)
        try:
            with atomic_path(path, durable=False) as temporary:  # whole or absent; no fsync per image
                torch.save({"features": tensor}, temporary)
        except OSError as error:  # disk full, quota: keep training, from memory only
            if not self._write_failed:
                log.warning("feature cache: cannot write %s (%s); caching in memory only", path, error)
            self._write_failed = True

    def _remember(self, key: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.memory_used + size <= self.memory_bytes:
            self.memory[key] = tensor
            self.memory_used += size

    def describe_group(self, group: str, description: dict) -> None:
        """A human-readable about.json in the group's folder (what the files in it were computed from)."""
        path = self.directory / group / "about.json"
        if path.exists():
            return
        write_text_atomically(path, json.dumps(description, indent=2))


class CachedBackboneFeatures:
    """The frozen backbone's per-image outputs by key (see the module docstring), with this epoch's hits.

    Args:
        directory: the shared cache folder (`train.feature_cache_dir`).
        splits: per split name ("train", "val"): (its CocoDetection dataset, its transform's description).
        memory_bytes: how much of the features to keep in memory too.
    """

    def __init__(self, directory: str | Path, splits: dict[str, tuple], memory_bytes: int = DEFAULT_MEMORY_BYTES):
        self.store = FeatureStore(directory, memory_bytes)
        self.splits = {name: self._split_identity(dataset, transform) for name, (dataset, transform) in splits.items()}
        self.datasets = {name: dataset for name, (dataset, _) in splits.items()}
        self.fingerprint: str | None = None
        self.counts = {"hits": 0, "misses": 0}

    @staticmethod
    def _split_identity(dataset, transform: dict) -> dict:
        if transform is None:
            raise ValueError("a split with a random transform cannot be cached (see check_cacheable)")
        return {
            "images": str(Path(dataset.images_dir).resolve()),
            "annotations": file_identity(Path(dataset.annotations_file)),
            "transform": transform,
        }

    def _image_key(self, split: str, image_id: int, canvas: tuple[int, int], context: str) -> str:
        dataset = self.datasets[split]
        image_file = Path(dataset.images_dir) / dataset.coco.imgs[image_id]["file_name"]
        stat = image_file.stat()
        described = {
            "format": CACHE_FORMAT_VERSION,
            "backbone": self.fingerprint,
            "split": self.splits[split],
            "image": [image_id, stat.st_size, stat.st_mtime_ns],
            "canvas": list(canvas),
            "computed": context,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def _ensure_fingerprint(self, backbone: torch.nn.Module) -> None:
        # Computed once: the backbone is frozen for the whole run (check_cacheable), so its state never changes
        # after the first frozen step; a resumed or fine-tuned run has loaded its weights by then.
        if self.fingerprint is None:
            self.fingerprint = backbone_fingerprint(backbone)
            self.store.describe_group(
                self.fingerprint[:16],
                {
                    "what": "detr_ft train.cache_backbone_features: one backbone's per-image features",
                    "backbone": getattr(backbone, "name", type(backbone).__name__),
                    "fingerprint": self.fingerprint,
                    "torch": torch.__version__,
                },
            )

    @staticmethod
    def _compute_context(device: torch.device) -> str:
        autocast = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if autocast else "off"
        return f"{device.type}|autocast={dtype}|torch={torch.__version__}"

    def features(
        self,
        backbone: torch.nn.Module,
        images: torch.Tensor,
        mask: torch.Tensor,
        targets: list[dict],
        split: str,
        compute: Callable | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like backbone(images, mask) -> (features [B, C, h, w], feature_mask [B, h, w]), from the cache
        where it holds the images of this batch on this canvas; `compute(images, mask)` (default: the backbone)
        computes the others."""
        compute = compute or backbone
        if not backbone.is_frozen:
            if backbone.training:
                raise RuntimeError(
                    f"train.cache_backbone_features: backbone stages {backbone.unfrozen_stages} train, so their "
                    "cached features would be stale; the cache needs a backbone that never trains"
                )
            return compute(images, mask)  # e.g. Lightning's sanity check, before the first epoch freezes it
        self._ensure_fingerprint(backbone)
        canvas = tuple(images.shape[-2:])
        context = self._compute_context(images.device)
        group = self.fingerprint[:16]
        keys = [self._image_key(split, int(target["image_id"]), canvas, context) for target in targets]
        found = [self.store.get(group, key) for key in keys]
        missing = [index for index, tensor in enumerate(found) if tensor is None]
        if missing:
            with torch.no_grad():
                fresh, _ = compute(images[missing], mask[missing])
            for position, index in enumerate(missing):
                found[index] = fresh[position].detach().cpu().clone()
                self.store.put(group, keys[index], found[index])
        self.counts["hits"] += len(keys) - len(missing)
        self.counts["misses"] += len(missing)
        features = torch.stack(found).to(images.device, non_blocking=True)
        return features, downsample_mask(mask, features)  # the mask exactly as the backbone derives it
