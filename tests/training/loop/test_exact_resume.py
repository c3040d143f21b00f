"""Resume is exact: a run killed with SIGKILL mid-epoch and resumed from its last.ckpt ends with the same weights,
bit for bit, as the run left alone, across a progressive unfreeze, with augmentation and dropout on and another
number of DataLoader workers."""

import os
import signal
import subprocess
import sys
import time

import torch

from detr_ft.train import train
from tests.conftest import TINY_OVERRIDES

# Every random thing on: dropout, flip, two scales and the crop; the backbone unfreezes at epoch 2 of 0-2.
EXACT = [
    "trainer.deterministic=true",
    "train.seed=3",
    "train.epochs=3",
    "finetune_strategy=progressive",
    "train.unfreeze_backbone_at_epoch=2",
    "model.transformer.dropout=0.1",
    "data.train_scales=[48,64]",
    "data.crop=true",
    "callbacks.prediction_pictures=null",
]


def _weights(checkpoint: str) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True)["state_dict"]


def _start_and_kill_after_first_epoch(run_dir, cache, cwd) -> int:
    """`python -m detr_ft` with 2 workers, SIGKILLed (with its workers) as soon as last.ckpt exists; -> the
    epoch that last.ckpt holds."""
    args = [*TINY_OVERRIDES, *EXACT, f"data.cache_dir={cache}", "train.num_workers=2", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "detr_ft", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill reaches the DataLoader workers too
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be killed:\n{process.stderr.read().decode()[-3000:]}"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return torch.load(last, weights_only=True)["epoch"]


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_bit_for_bit(tiny_cfg, tmp_path, data_cache):
    straight = train(tiny_cfg(*EXACT))

    killed = tmp_path / "killed"
    saved_epoch = _start_and_kill_after_first_epoch(killed, data_cache, tmp_path)
    assert saved_epoch < 2, "the kill should land before the unfreeze epoch, so the resume crosses it"

    resumed = train(tiny_cfg(*EXACT, "train.num_workers=1", f"train.resume_from={killed}"))
    assert torch.load(resumed.last_checkpoint, weights_only=True)["epoch"] == 2
    expected, got = _weights(straight.last_checkpoint), _weights(resumed.last_checkpoint)
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:3]}"
