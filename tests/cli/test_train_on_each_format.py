"""The README's command trains on each format a user brings: `python -m detr_ft data=yolo data.root=DIR` (and
data=coco on Roboflow's export, data=voc, data=hf) runs one epoch of the tiny model on the tiny dataset that
tests/data/formats/tiny_formats.py writes, and leaves its checkpoint and its dataset picture."""

import pytest

from tests.conftest import TINY_OVERRIDES, run_cli
from tests.data.formats.tiny_formats import FORMATS, WRITERS, data_keys

TINY_DATA = ["data.train_scales=[32]", "data.max_size=64", "data.eval_scale=32", "train.batch_size=2"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", FORMATS)
def test_one_epoch_from_the_readme_command(tmp_path, kind):
    root = WRITERS[kind](tmp_path / kind)
    tiny = [override for override in TINY_OVERRIDES if not override.startswith("data")]
    keys = [*data_keys(kind, root), *tiny, *TINY_DATA, f"data.cache_dir={tmp_path / 'cache'}"]
    result = run_cli(["-m", "detr_ft", *keys], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert list((tmp_path / "outputs").rglob("*.ckpt")), "no checkpoint"
    assert list((tmp_path / "outputs").rglob("dataset_overview.png")), "no dataset picture"
