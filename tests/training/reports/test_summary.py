"""The end-of-run table's next steps: commands quoted so a POSIX shell and Hydra read back the exact path,
the guide's `best_epoch=6-...ckpt` names included; run folders accepted where a checkpoint is asked for."""

import shlex

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser

from detr_ft.train import train
from detr_ft.training.reports.summary import next_commands, shell_override
from tests.training.recorders import InitialState


@pytest.mark.parametrize(
    "path",
    [
        "/runs/outputs/2026-11-27/20-31-25",
        "/runs/checkpoints/best_epoch=18-step=1900-val_mAP=0.4801.ckpt",
        "/my runs/with space/last.ckpt",
        "/it's/quoted",
        '/a "double" quote/x',
        "/brackets[1]/and,comma/{x}",
        "relative/best_epoch=6-step=51751-train_loss=2.9145.ckpt",
    ],
)
def test_a_printed_override_reads_back_as_the_exact_path(path):
    words = shlex.split(shell_override("train.checkpoint_path", path))  # what the shell hands Hydra
    assert len(words) == 1
    override = OverridesParser.create().parse_override(words[0])
    assert override.key_or_group == "train.checkpoint_path" and override.value() == path


def test_the_resume_command_repeats_the_runs_own_overrides():
    overrides = [
        "finetune_strategy=frozen",
        "train.learning_rate=2e-4",
        "data.train_scales=[96,128]",
        "hydra.run.dir=x",
    ]
    commands = next_commands("/runs/a", overrides)
    words = shlex.split(commands["resume it"])
    assert words[:3] == ["python", "-m", "detr_ft"]
    assert words[3:] == [
        "finetune_strategy=frozen",
        "train.learning_rate=2e-4",
        "data.train_scales=[96,128]",
        "train.resume_from=/runs/a",
    ]
    assert shlex.split(commands["fine-tune from it"])[3:] == ["train.checkpoint_path=/runs/a"]


def test_a_run_folder_stands_for_its_best_checkpoint_and_for_its_last_when_resuming(tiny_cfg):
    one_batch = ("trainer.limit_train_batches=1", "trainer.limit_val_batches=1")  # which file is read, not what
    first = train(tiny_cfg("train.epochs=2", *one_batch))
    state = InitialState()
    train(tiny_cfg(f"train.checkpoint_path={first.run_dir}", *one_batch), callbacks=[state])
    best = torch.load(first.best_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(state.state[k.removeprefix("model.")], v) for k, v in best.items() if k.startswith("model."))
    resumed = train(tiny_cfg("train.epochs=3", f"train.resume_from={first.run_dir}", *one_batch))
    assert torch.load(resumed.last_checkpoint, weights_only=True)["epoch"] == 2  # continued after epoch 1
