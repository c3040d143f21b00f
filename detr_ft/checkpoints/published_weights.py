"""Published DETR weights by name (`train.checkpoint_path=detr-r50`): downloaded once into the standard cache,
checksum checked, then read like any local file by `detr_ft.checkpoints.weight_layouts`.

- `detr-r50`, `detr-r101`: the official release files, in torch hub's cache (`$TORCH_HOME/hub/checkpoints`).
  The 8 hex digits in each file name are the start of its sha256, checked on download (as torch.hub does).
- `facebook/detr-resnet-50`, `facebook/detr-resnet-101`: Hugging Face's `model.safetensors`, in
  huggingface_hub's cache (`$HF_HUB_CACHE`). The hub stores a large file under its sha256 (`blobs/<sha256>`),
  so the content is checked against the checksum the hub published for it.
"""

import hashlib
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch.hub

from detr_ft.checkpoints.weight_layouts import CheckpointError


@dataclass(frozen=True)
class OfficialRelease:
    """A file of the official DETR release: `url`'s file name ends in the first hex digits of its sha256."""

    url: str
    model: str  # the conf/model option it fits

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        return self.file_name.rsplit("-", 1)[-1].split(".")[0]


@dataclass(frozen=True)
class HuggingFaceRelease:
    """A Hugging Face model repository's weights file (safetensors: no pickled code)."""

    repo_id: str
    model: str
    file_name: str = "model.safetensors"
    revision: str = "main"


PUBLISHED = {
    "detr-r50": OfficialRelease("https://dl.fbaipublicfiles.com/detr/detr-r50-e632da11.pth", model="detr_r50"),
    "detr-r101": OfficialRelease("https://dl.fbaipublicfiles.com/detr/detr-r101-2c7b67e5.pth", model="detr_r101"),
    "facebook/detr-resnet-50": HuggingFaceRelease("facebook/detr-resnet-50", model="detr_r50"),
    "facebook/detr-resnet-101": HuggingFaceRelease("facebook/detr-resnet-101", model="detr_r101"),
}


def known_names() -> str:
    return ", ".join(f"{name} (model={release.model})" for name, release in PUBLISHED.items())


def is_published_name(reference: str) -> bool:
    return reference in PUBLISHED


def torch_hub_folder() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch(name: str) -> Path:
    """The local file of published weights `name`, downloaded (and checked) on first use.
    Raises CheckpointError listing the known names, or saying how to get the file by hand when offline."""
    release = PUBLISHED.get(name)
    if release is None:
        raise CheckpointError(f"no published weights are called {name!r}; known names: {known_names()}")
    if isinstance(release, OfficialRelease):
        return _fetch_official(name, release)
    return _fetch_huggingface(name, release)


def _fetch_official(name: str, release: OfficialRelease) -> Path:
    path = torch_hub_folder() / release.file_name
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes to a temporary file and renames it only once the hash prefix matched.
        torch.hub.download_url_to_file(release.url, str(path), hash_prefix=release.sha256_prefix, progress=True)
    except RuntimeError as error:  # torch.hub's "invalid hash value"
        raise CheckpointError(
            f"{name}: the file downloaded from {release.url} is corrupt ({error}); try again"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise CheckpointError(
            f"train.checkpoint_path={name}: could not download {release.url} ({error}). Offline? On a machine with "
            f"internet, download {release.url} and put it at {path} (torch hub's cache: $TORCH_HOME/hub/checkpoints), "
            f"or pass the file itself: train.checkpoint_path=/path/to/{release.file_name} "
            "(train.checkpoint_path=null starts without them)"
        ) from None
    return path


def _fetch_huggingface(name: str, release: HuggingFaceRelease) -> Path:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = Path(hf_hub_download(release.repo_id, release.file_name, revision=release.revision))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        url = f"https://huggingface.co/{release.repo_id}/resolve/{release.revision}/{release.file_name}"
        raise CheckpointError(
            f"train.checkpoint_path={name}: could not download {release.file_name} of {release.repo_id} "
            f"({str(error).splitlines()[0]}). Offline? On a machine with internet, run "
            f"`hf download {release.repo_id} {release.file_name}` and copy its cache ({constants.HF_HUB_CACHE}, "
            f"$HF_HUB_CACHE) here, or download {url} and pass it: train.checkpoint_path=/path/to/{release.file_name} "
            "(train.checkpoint_path=null starts without them)"
        ) from None
    _check_hub_checksum(name, path)
    return path


def _check_hub_checksum(name: str, path: Path) -> None:
    """The hub's cache names a large file's blob by the sha256 the hub published: the content must match it."""
    published = path.resolve().name
    if len(published) != 64:  # a small file's blob is named by its git hash: nothing published to compare with
        return
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != published:
        raise CheckpointError(
            f"{name}: {path} does not match the sha256 the hub published ({published}, got {digest.hexdigest()}); "
            f"delete {path.resolve()} and try again"
        )
