"""Training-only queries through the real training loop: resume stays bit-exact with query groups, one-to-many
queries, IoU-aware targets and EMA on; predict runs group 0
alone; finetune_strategy=auto runs through the unfreezing callback."""

from pathlib import Path

import torch

from detr_ft.inference.detector import Detector
from detr_ft.train import train
from detr_ft.training.reports.results_png import read_epoch_means

AIDS = [
    "model.query_groups=2",
    "model.one_to_many_queries=12",
    "criterion.one_to_many_k=2",
    "criterion.class_targets=iou_aware",
    "train.ema_decay=0.9",
    "train.seed=4",
    "callbacks.prediction_pictures=null",
    "finetune_strategy=auto",
]


def test_training_with_the_aids_resumes_bit_exactly_and_predicts_with_group_0(tiny_cfg):
    straight = train(tiny_cfg(*AIDS, "train.epochs=2"))
    first = train(tiny_cfg(*AIDS, "train.epochs=1"))
    resumed = train(tiny_cfg(*AIDS, "train.epochs=2", f"train.resume_from={first.last_checkpoint}"))
    expected = torch.load(straight.last_checkpoint, weights_only=True)["state_dict"]
    got = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    assert any(".training_queries.groups" in name for name in expected)
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:3]}"

    health = read_epoch_means(Path(straight.run_dir) / "metrics.csv")  # group 0's matches, with every aid on
    assert set(health["matching/no_object_prob"]) == set(health["matching/unmatched_queries"]) == {0, 1}
    assert set(health["matching/instability"]) == {1}  # from the second epoch, which sees the same objects

    detector = Detector(straight.last_checkpoint, device="cpu")
    with torch.no_grad():
        out = detector.model(torch.randn(1, 3, 64, 64))
    assert out["pred_logits"].shape[1] == detector.model.num_queries  # group 0 only
