"""One run per folder: a second run on a folder in use stops at once naming the folder and the other run's pid, a
killed run leaves no stale lock, and a refused run leaves the other run's `.hydra/` files byte-identical."""

import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from detr_ft.training.guards import run_lock
from tests.conftest import REPO, TINY_OVERRIDES, run_cli

HOLDER = (
    "import sys, time; from detr_ft.training.guards import run_lock; run_lock.hold(sys.argv[1]); "
    "print('held', flush=True); time.sleep(600)"
)


def _hold_in_another_process(folder):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_folder_locked_by_another_process_is_refused_naming_its_pid_and_freed_when_it_dies(tmp_path):
    holder = _hold_in_another_process(tmp_path / "run")
    try:
        with pytest.raises(run_lock.RunFolderBusy, match=rf"{tmp_path / 'run'} is in use .*pid {holder.pid}\b"):
            run_lock.hold(tmp_path / "run")
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the OS drops the lock
        holder.wait()
    assert run_lock.hold(tmp_path / "run")  # no stale lock
    assert not run_lock.hold(tmp_path / "run")  # this process asking again is let in
    run_lock.release(tmp_path / "run")


def _fake_earlier_run(folder, with_checkpoint: bool) -> dict:
    (folder / ".hydra").mkdir(parents=True)
    files = {".hydra/config.yaml": b"train:\n  seed: 1\n", ".hydra/overrides.yaml": b"- train.seed=1\n"}
    if with_checkpoint:
        (folder / "checkpoints").mkdir()
        files["checkpoints/last.ckpt"] = b"not read"
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


@pytest.mark.parametrize("fault", ["checkpoints", "locked"])
def test_a_refused_run_leaves_the_other_runs_hydra_files_byte_identical(tmp_path, fault):
    folder = tmp_path / "run"
    files = _fake_earlier_run(folder, with_checkpoint=fault == "checkpoints")
    holder = _hold_in_another_process(folder) if fault == "locked" else None
    try:
        result = run_cli(["-m", "detr_ft", *TINY_OVERRIDES, "train.seed=2", f"hydra.run.dir={folder}"], cwd=tmp_path)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert result.returncode != 0
    expected = (
        "already holds checkpoints" if fault == "checkpoints" else f"in use by another run \\(pid {holder.pid}\\)"
    )
    assert str(folder) in result.stderr
    assert re.search(expected, result.stderr), result.stderr[-2000:]
    assert {name: (folder / name).read_bytes() for name in files} == files


def test_a_sweep_job_refused_for_a_locked_folder_leaves_its_hydra_files_byte_identical(tmp_path):
    """The job's folder is locked as Hydra names it, before Hydra writes the job's `.hydra/` and log file."""
    folder = tmp_path / "sweep" / "0"
    files = _fake_earlier_run(folder, with_checkpoint=False)
    holder = _hold_in_another_process(folder)
    try:
        args = ["-m", "detr_ft", "--multirun", *TINY_OVERRIDES, "train.seed=2", f"hydra.sweep.dir={folder.parent}"]
        result = run_cli(args, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    assert re.search(f"{folder} is in use by another run \\(pid {holder.pid}\\)", result.stderr), result.stderr[-2000:]
    assert {name: (folder / name).read_bytes() for name in files} == files
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", ".run.lock"]  # no log file either


@pytest.mark.slow
def test_two_runs_started_together_on_one_folder_one_is_refused_and_the_other_finishes_whole(tmp_path):
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "detr_ft", *TINY_OVERRIDES, f"data.cache_dir={tmp_path}/cache", f"train.seed={seed}"]
            + [f"hydra.run.dir={folder}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [(run.args, *run.communicate(timeout=600), run.returncode) for run in runs]
    refused = [r for r in results if r[3] != 0]
    finished = [r for r in results if r[3] == 0]
    assert len(refused) == 1 and len(finished) == 1, [r[2][-1500:] for r in results]
    assert f"{folder} is in use by another run (pid " in refused[0][2]
    assert "detr_ft run summary" not in refused[0][1]
    winner_seed = next(a for a in finished[0][0] if a.startswith("train.seed="))
    assert f"- {winner_seed}\n" in (folder / ".hydra/overrides.yaml").read_text()  # the winner's own
    config = torch.load(folder / "checkpoints/last.ckpt", weights_only=True)["detr_ft"]["config"]
    assert f"seed: {winner_seed.split('=')[1]}\n" in config  # last.ckpt is the winner's, whole
