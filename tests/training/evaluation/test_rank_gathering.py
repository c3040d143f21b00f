"""Detections as float64 rows: packing is lossless, ranks' rows are gathered with each image once, and a
two-process evaluation gives exactly the one-process numbers."""

import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detr_ft.data.categories import CategoryMap
from detr_ft.model.postprocess import to_coco_results
from detr_ft.training.evaluation.coco_evaluation import DetectionEvaluator
from detr_ft.training.evaluation.rank_gathering import drop_duplicate_images, gather_rows, pack_results, unpack_results
from tests.training.evaluation.test_coco_evaluation import BOXES, CATEGORIES, IMAGES, coco, model_outputs  # noqa: F401


def _random_results(seed: int = 0, images: int = 5, queries: int = 30) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    categories = CategoryMap.from_coco_categories(CATEGORIES)
    predictions = []
    for _ in range(images):
        corners = torch.rand(queries, 2, generator=generator) * 600
        sizes = torch.rand(queries, 2, generator=generator) * 300
        predictions.append(
            {
                "scores": torch.rand(queries, generator=generator),
                "labels": torch.randint(0, 2, (queries,), generator=generator),
                "boxes": torch.cat([corners, corners + sizes], 1),
            }
        )
    # Ids beyond 2**31 and file category ids 12 / 40: what a round trip through float32 or int32 would spoil.
    return to_coco_results(predictions, [2**40 + i for i in range(images)], categories)


def test_packing_and_unpacking_give_back_the_same_results():
    results = _random_results()
    rows = pack_results(results)
    assert rows.dtype == torch.float64 and rows.shape == (150, 7)
    assert unpack_results(rows) == results  # exactly equal: ids, rounded boxes and scores
    assert unpack_results(pack_results([])) == []


def test_duplicates_from_sampler_padding_are_dropped_per_image():
    rank0 = pack_results(
        [
            {"image_id": 1, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 0.9},
            {"image_id": 1, "category_id": 40, "bbox": [0, 0, 1, 1], "score": 0.5},
            {"image_id": 2, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 0.8},
        ]
    )
    rank1 = pack_results(
        [
            {"image_id": 3, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 0.7},
            {"image_id": 1, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 0.9},  # padding: image 1 again
            {"image_id": 1, "category_id": 40, "bbox": [0, 0, 1, 1], "score": 0.4},
        ]
    )
    kept = unpack_results(drop_duplicate_images([rank0, rank1]))
    assert [(r["image_id"], r["category_id"], r["score"]) for r in kept] == [
        (1, 12, 0.9),
        (1, 40, 0.5),
        (2, 12, 0.8),
        (3, 12, 0.7),
    ]


def test_gather_is_a_no_op_without_distributed():
    rows = pack_results(_random_results(images=1))
    assert gather_rows(rows) is rows


def _gather_worker(rank: int, world_size: int, init_file: str, rows_per_rank: list, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        # Plain lists in and out: tensors would travel as shared memory that dies with the worker.
        queue.put((rank, gather_rows(torch.tensor(rows_per_rank[rank], dtype=torch.float64)).tolist()))
    finally:
        dist.destroy_process_group()


def _rows_of(images: list[dict], queries: int) -> torch.Tensor:
    evaluator = DetectionEvaluator(CategoryMap.from_coco_categories(CATEGORIES), backend="pycocotools")
    evaluator.update(*model_outputs(images, evaluator.category_map, queries=queries))
    return evaluator.rows


def test_gather_collects_every_rank_once_and_scores_as_one_process(tmp_path, coco):  # noqa: F811
    # 3 images over 2 ranks: the sampler pads rank 1 with image 101 again; rank 1 has more rows. The rows are
    # made here, before forking: a forked child must not run torch's OpenMP thread pool (it can hang).
    rows_per_rank = [_rows_of([IMAGES[0], IMAGES[2]], 4).tolist(), _rows_of([IMAGES[1], IMAGES[0]], 5).tolist()]
    assert [len(rows) for rows in rows_per_rank] == [8, 10]
    context = mp.get_context("fork")  # no re-import in the children: a fraction of a second, not ten
    queue = context.SimpleQueue()
    workers = mp.start_processes(
        _gather_worker,
        args=(2, str(tmp_path / "init"), rows_per_rank, queue),
        nprocs=2,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + 60
    while not workers.join(timeout=1):
        if time.monotonic() > deadline:
            for process in workers.processes:
                process.kill()
            pytest.fail("the two gloo workers did not finish within 60 s")
    answers = dict(queue.get() for _ in range(2))
    gathered0, gathered1 = answers[0], answers[1]
    assert gathered0 == gathered1  # every rank sees the same full set
    together = unpack_results(torch.tensor(gathered0, dtype=torch.float64))
    assert sorted({r["image_id"] for r in together}) == [101, 102, 103]
    assert len(together) == 4 + 4 + 5  # image 101 once, from rank 0 (4 queries), not rank 1's copy (5)

    single = DetectionEvaluator(CategoryMap.from_coco_categories(CATEGORIES), backend="pycocotools")
    single.update(*model_outputs(IMAGES, single.category_map, queries=4))
    expected = single.evaluate(coco)
    assert expected.metrics["mAP"] == pytest.approx(1.0)
    from detr_ft.training.evaluation.coco_evaluation import evaluate_coco

    assert evaluate_coco(coco, together, [101, 102, 103], "pycocotools").metrics == expected.metrics
