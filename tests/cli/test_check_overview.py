"""`python -m detr_ft.check` writes dataset_overview.png where it runs and prints its path."""

import subprocess
import sys


def test_the_check_writes_the_overview_and_prints_its_path(tmp_path):
    sizes = ["data.train_size=12", "data.val_size=4", "data.image_size=64", f"data.cache_dir={tmp_path}"]
    (tmp_path / "here").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "detr_ft.check", "data=synthetic_v2", *sizes],
        cwd=tmp_path / "here",
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "overview: dataset_overview.png" in result.stdout
    assert (tmp_path / "here" / "dataset_overview.png").stat().st_size > 0
