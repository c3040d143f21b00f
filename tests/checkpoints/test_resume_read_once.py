"""A resume reads its checkpoint file once: train() reads it before the MLflow run starts and hands the
contents on to Lightning's restore."""

import torch

from detr_ft.train import train


def test_a_resume_reads_its_checkpoint_file_once_and_continues_after_its_epoch(tiny_cfg, tiny_run, monkeypatch):
    last = str(tiny_run.last_checkpoint)
    reads, real_load = [], torch.load

    def counting_load(file, *args, **kwargs):
        reads.append(str(file))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    summary = train(tiny_cfg("train.epochs=2", f"train.resume_from={last}"))
    assert reads.count(last) == 1, reads
    assert summary.last_checkpoint and torch.load(summary.last_checkpoint, weights_only=True)["epoch"] == 1
