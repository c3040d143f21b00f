"""`python -m benchmarks peers` runs end to end (one step of each case on tiny images) and writes its figures."""

import json

from benchmarks.__main__ import main as run_benchmarks

CASES = ("train_step_full_s", "train_step_frozen_s", "train_step_frozen_cached_features_s", "inference_images_per_s")


def test_peer_benchmark_prints_the_table_and_writes_the_json(tmp_path, capsys):
    out = tmp_path / "peers.json"
    options = ["--steps", "1", "--warmup", "0", "--size", "64", "--threads", "1", "--out", str(out)]
    run_benchmarks(["peers", *options, "--count-batches", "1", "3", "--count-size", "64"])
    report = json.loads(out.read_text())
    assert set(report) == {
        "setup",
        "max_output_difference",
        "matmul_peak_gflop_per_s",
        "detr_ft_step_flop_rates",
        "operator_calls_per_train_step",
        "results",
    }
    assert report["setup"]["device"] == "cpu" and report["setup"]["precision"] == "fp32"
    assert report["max_output_difference"] < 1e-4  # both models computed the same thing
    assert set(report["results"]) == set(CASES)
    for figures in report["results"].values():
        assert figures["detr_ft"] > 0 and figures["peer"] > 0
        assert abs(figures["ratio_detr_ft_to_peer"] - figures["detr_ft"] / figures["peer"]) < 1e-9
    rates = report["detr_ft_step_flop_rates"]
    assert set(rates) == {"full", "frozen", "frozen_cached_features"}
    # The frozen step skips the backbone's backward, the cached one its forward too: fewer FLOPs each time.
    assert rates["full"]["gflop"] > rates["frozen"]["gflop"] > rates["frozen_cached_features"]["gflop"] > 0
    assert report["matmul_peak_gflop_per_s"] > 0
    calls = report["operator_calls_per_train_step"]
    assert calls["image_size"] == 64 and {"batch_1", "batch_3"} <= set(calls)
    for batch in ("batch_1", "batch_3"):
        for counts in calls[batch].values():
            assert min(counts["forward"], counts["loss"], counts["backward"]) > 0
            assert counts["total"] == counts["forward"] + counts["loss"] + counts["backward"]
    # detr_ft's matcher and loss run no per-image ops on the device: as many calls for 3 images as for 1.
    assert calls["batch_1"]["detr_ft"]["loss"] == calls["batch_3"]["detr_ft"]["loss"]
    assert calls["batch_1"]["peer"]["loss"] < calls["batch_3"]["peer"]["loss"]  # the peer loops over images
    printed = capsys.readouterr().out
    assert "operator calls, detr_ft, batch 3" in printed
    assert "detr_ft/peer" in printed and all(case in printed for case in CASES)
