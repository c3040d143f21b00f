"""Detections as one float64 tensor per process, and their gathering across processes.

A row is (image_id, category_id, x, y, width, height, score): a COCO result in the file's ids and original
pixels. float64 holds every id below 2**53 and every rounded coordinate and score exactly, so packing and
unpacking return the very numbers `to_coco_results` made. Gathering is two fixed-width `all_gather`s (row
counts, then rows padded to the largest count) instead of pickling lists of Python dicts.
"""

import torch
import torch.distributed as dist

COLUMNS = ("image_id", "category_id", "x", "y", "width", "height", "score")


def pack_results(results: list[dict]) -> torch.Tensor:
    """COCO results (image_id, category_id, bbox xywh, score) -> float64 [N, 7]."""
    rows = [[r["image_id"], r["category_id"], *r["bbox"], r["score"]] for r in results]
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, len(COLUMNS))


def unpack_results(rows: torch.Tensor) -> list[dict]:
    """float64 [N, 7] -> COCO results, the inverse of `pack_results`."""
    return [
        {"image_id": int(image_id), "category_id": int(category_id), "bbox": [x, y, w, h], "score": score}
        for image_id, category_id, x, y, w, h, score in rows.tolist()
    ]


def drop_duplicate_images(parts: list[torch.Tensor]) -> torch.Tensor:
    """Each rank's rows, in rank order -> one [N, 7] tensor holding each image's rows from the first rank
    that has that image.

    DistributedSampler pads the last round by giving some images to a second rank; without this, those
    images' detections would count twice (the same box once as a hit, once as a false positive).
    """
    kept, seen = [], torch.empty(0, dtype=torch.float64)
    for part in parts:
        image_ids = part[:, 0]
        kept.append(part[~torch.isin(image_ids, seen)])
        seen = torch.cat([seen, image_ids.unique()])
    return torch.cat(kept) if kept else torch.empty(0, len(COLUMNS), dtype=torch.float64)


def _collective_device() -> torch.device:
    # NCCL moves CUDA tensors only; gloo (CPU runs, tests) moves CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's rows [N_r, 7], on every rank, each image once (CPU). Without torch.distributed (or with
    one process) the rows come back unchanged."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return rows
    device, world_size = _collective_device(), dist.get_world_size()
    count = torch.tensor([rows.shape[0]], dtype=torch.int64, device=device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    padded = torch.zeros(max(counts), len(COLUMNS), dtype=torch.float64, device=device)
    padded[: rows.shape[0]] = rows.to(device)
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    return drop_duplicate_images([part[:n].cpu() for part, n in zip(parts, counts, strict=True)])
