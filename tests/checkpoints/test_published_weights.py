"""Weights by name (`train.checkpoint_path=detr-r50`, `facebook/detr-resnet-50`): downloaded once into torch hub's
or huggingface_hub's cache with the checksum checked, then loaded as local files are. No network: the official
URL table points at a local file:// URL and the Hugging Face cache is built here, as the hub lays it out."""

import hashlib
import shutil

import pytest
import torch
import torch.hub
from huggingface_hub import constants
from safetensors.torch import save_file

from detr_ft.checkpoints import published_weights
from detr_ft.checkpoints.initial_weights import load_initial_weights, resolve_checkpoint_path
from detr_ft.checkpoints.published_weights import HuggingFaceRelease, OfficialRelease
from detr_ft.checkpoints.weight_layouts import CheckpointError
from tests.model.helpers import tiny_detr

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch_hub"))
    return tmp_path / "torch_hub" / "checkpoints"


def _official_release(tmp_path, monkeypatch, prefix: str | None = None):
    """A release file served from a file:// URL whose name carries its sha256 prefix (or a wrong one)."""
    source = tiny_detr(num_classes=5)
    staged = tmp_path / "release" / "staged.pth"
    staged.parent.mkdir()
    torch.save({"model": source.state_dict()}, staged)
    served = staged.with_name(f"detr-r50-{prefix or _sha256(staged)[:8]}.pth")
    staged.rename(served)
    monkeypatch.setitem(published_weights.PUBLISHED, "detr-r50", OfficialRelease(served.as_uri(), "detr_r50"))
    return source, served


def test_an_official_name_downloads_once_into_torch_hubs_cache_and_loads(tmp_path, monkeypatch, torch_hub_cache):
    source, served = _official_release(tmp_path, monkeypatch)
    path = resolve_checkpoint_path("detr-r50", "sqlite:///unused.db")
    assert path == torch_hub_cache / served.name and _sha256(path) == _sha256(served)
    served.unlink()  # the second use reads the cache, never the URL
    assert resolve_checkpoint_path("detr-r50", "sqlite:///unused.db") == path

    target = tiny_detr(num_classes=5)
    torch.nn.init.zeros_(target.query_embed.weight)
    report = load_initial_weights(target, path, class_names=[str(i) for i in range(5)])
    assert not report.missing and not report.reinitialized
    assert torch.equal(target.query_embed.weight, source.query_embed.weight)


def test_a_download_whose_checksum_differs_is_refused_and_not_cached(tmp_path, monkeypatch, torch_hub_cache):
    _official_release(tmp_path, monkeypatch, prefix="00000000")
    with pytest.raises(CheckpointError, match="corrupt"):
        resolve_checkpoint_path("detr-r50", "sqlite:///unused.db")
    assert not list(torch_hub_cache.glob("*.pth"))


def test_offline_the_error_says_what_to_download_from_where_and_where_to_put_it(tmp_path, monkeypatch, torch_hub_cache):
    url = (tmp_path / "nowhere" / "detr-r50-e632da11.pth").as_uri()
    monkeypatch.setitem(published_weights.PUBLISHED, "detr-r50", OfficialRelease(url, "detr_r50"))
    with pytest.raises(CheckpointError) as raised:
        resolve_checkpoint_path("detr-r50", "sqlite:///unused.db")
    message = str(raised.value)
    assert url in message and str(torch_hub_cache / "detr-r50-e632da11.pth") in message
    assert "train.checkpoint_path=/path/to/detr-r50-e632da11.pth" in message


def test_an_unknown_name_lists_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as raised:
        resolve_checkpoint_path("detr-r5", "sqlite:///unused.db")
    for name in ("detr-r50", "detr-r101", "facebook/detr-resnet-50", "facebook/detr-resnet-101"):
        assert name in str(raised.value)


def _hub_cache(tmp_path, monkeypatch, corrupt: bool = False):
    """huggingface_hub's cache layout: blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/main -> commit;
    offline, so hf_hub_download must find the file there."""
    source = tiny_detr(num_classes=4)
    staged = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(staged))
    repo = tmp_path / "hf_hub" / "models--facebook--detr-resnet-50"
    blob = repo / "blobs" / (("0" * 64) if corrupt else _sha256(staged))
    blob.parent.mkdir(parents=True)
    shutil.move(staged, blob)
    snapshot = repo / "snapshots" / REVISION / "model.safetensors"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return source, snapshot


def test_a_hugging_face_name_loads_from_the_hub_cache(tmp_path, monkeypatch):
    source, snapshot = _hub_cache(tmp_path, monkeypatch)
    path = resolve_checkpoint_path("facebook/detr-resnet-50", "sqlite:///unused.db")
    assert path == snapshot
    target = tiny_detr(num_classes=4)
    torch.nn.init.zeros_(target.query_embed.weight)
    load_initial_weights(target, path, class_names=[str(i) for i in range(4)])
    assert torch.equal(target.query_embed.weight, source.query_embed.weight)


def test_a_hub_file_that_does_not_match_its_published_sha256_is_refused(tmp_path, monkeypatch):
    _hub_cache(tmp_path, monkeypatch, corrupt=True)
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        resolve_checkpoint_path("facebook/detr-resnet-50", "sqlite:///unused.db")


def test_offline_without_the_hub_file_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setitem(
        published_weights.PUBLISHED, "facebook/detr-resnet-101", HuggingFaceRelease("facebook/detr-resnet-101", "x")
    )
    with pytest.raises(CheckpointError) as raised:
        resolve_checkpoint_path("facebook/detr-resnet-101", "sqlite:///unused.db")
    message = str(raised.value)
    assert "hf download facebook/detr-resnet-101 model.safetensors" in message
    assert "https://huggingface.co/facebook/detr-resnet-101/resolve/main/model.safetensors" in message
    assert str(tmp_path / "empty_hub") in message
