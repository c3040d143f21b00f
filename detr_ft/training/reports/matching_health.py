"""DETR's own diagnostics, per training epoch, from the matching the set loss already computed (main decoder layer):

- `matching/instability`: share of ground-truth objects whose matched query changed since the previous epoch (an
  object is identified by its image id and its index in the image's annotations). High late in training: the
  queries have not settled on objects, the learning rate is too high or the data too noisy.
- `matching/unmatched_queries`: share of the queries never matched to any object in the epoch. Near 1 with few
  objects per image is normal; queries that never match never learn to predict objects.
- `matching/no_object_prob`: mean "no object" probability the model gives to the queries matched to objects. It
  should fall towards 0; stuck near 1, the model predicts background everywhere (a run that is not learning).
  The sigmoid class head has no no-object class: its analogue is 1 - the query's best class probability (the
  complement of the score its detection gets), which likewise falls towards 0 as matched queries learn to fire.
"""

import pytorch_lightning as pl
import torch

ObjectId = tuple[int, int]  # (image id, annotation index in the image)


class MatchTracker:
    """Accumulates one epoch's main-layer matches and compares them with the previous epoch's."""

    def __init__(self, num_queries: int):
        self.num_queries = num_queries
        self.previous: dict[ObjectId, int] = {}
        self._reset()

    def _reset(self) -> None:
        self.current: dict[ObjectId, int] = {}
        self.used_queries: set[int] = set()
        self.no_object_sum: torch.Tensor | float = 0.0  # a device tensor: summed without waiting for the device
        self.matched = 0

    def add(self, image_ids: list[int], matches, no_object_sum: torch.Tensor | float = 0.0) -> None:
        """matches: per image (query indices, target indices) arrays, as the matcher's `assign` returns them;
        no_object_sum: the summed no-object probability of those matched queries."""
        for image_id, (queries, targets) in zip(image_ids, matches, strict=True):
            for query, target in zip(queries.tolist(), targets.tolist(), strict=True):
                self.current[(image_id, target)] = query
            self.used_queries.update(queries.tolist())
            self.matched += len(queries)
        self.no_object_sum = self.no_object_sum + no_object_sum

    def end_epoch(self) -> dict[str, float]:
        """-> the epoch's figures (instability only from the second epoch that saw the same objects)."""
        figures = {"unmatched_queries": 1.0 - len(self.used_queries) / self.num_queries}
        if self.matched:
            figures["no_object_prob"] = float(self.no_object_sum) / self.matched
        common = self.current.keys() & self.previous.keys()
        if common:
            figures["instability"] = sum(self.current[k] != self.previous[k] for k in common) / len(common)
        self.previous = {**self.previous, **self.current}
        self._reset()
        return figures


def no_object_probability_sum(logits: torch.Tensor, matches, classification: str = "softmax") -> torch.Tensor:
    """logits [B, Q, K+1] (softmax) or [B, Q, K] (sigmoid) of the main output; matches per image (query indices,
    target indices) -> the summed "no object" probability of the matched queries, left on the device: softmax,
    that of the last class; sigmoid, 1 - the best class's probability."""
    queries = logits.shape[1]
    flat = [torch.as_tensor(q) + image * queries for image, (q, _) in enumerate(matches)]
    index = torch.cat(flat).to(logits.device) if flat else torch.zeros(0, dtype=torch.long, device=logits.device)
    matched = logits.detach().flatten(0, 1)[index].float()
    if classification == "sigmoid":
        return (1 - matched.sigmoid().amax(-1)).sum()
    return matched.softmax(-1)[:, -1].sum()


class MatchingHealth(pl.Callback):
    """Logs the three figures at each training epoch's end (MLflow, metrics.csv, results.png), from the training
    step's output: the criterion's main-layer matches and the detached `pred_logits` (nothing is matched twice)."""

    def __init__(self):
        self.tracker: MatchTracker | None = None
        # The epoch's (image ids, matches, no-object sum), image ids still on the device: read at the epoch's end,
        # so the training step never waits for the device here.
        self.pending: list[tuple[torch.Tensor, list, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.tracker is None:
            self.tracker = MatchTracker(pl_module.model.num_queries)
        self.pending = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        matches, logits = outputs.get("matches"), outputs.get("pred_logits")
        targets = batch[2]
        if self.tracker is None or matches is None or logits is None or len(matches) != len(targets):
            return  # nothing matched yet, or a step whose output holds no per-image matches
        image_ids = torch.stack([target["image_id"] for target in targets])
        no_object = no_object_probability_sum(logits, matches, pl_module.model.classification)
        self.pending.append((image_ids, matches, no_object))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.tracker is None:
            return
        for image_ids, matches, no_object_sum in self.pending:
            self.tracker.add(image_ids.tolist(), matches, no_object_sum)
        self.pending = []
        if not self.tracker.matched:
            return
        for name, value in self.tracker.end_epoch().items():
            pl_module.log(f"matching/{name}", value, on_step=False, on_epoch=True)
