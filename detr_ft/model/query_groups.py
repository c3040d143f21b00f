"""Training-only decoder queries: Group DETR's extra query groups (arXiv 2207.13085) and H-DETR's one-to-many
block (arXiv 2207.13080).

In training the decoder holds, after the model's own `num_queries` queries (group 0, `query_embed`), K - 1 more
groups of `num_queries` and a block of one-to-many queries; self-attention stays within each group or block,
so no group sees another. Evaluation, predict, export and ONNX run group 0 alone: the paper's graph. The extra
embeddings live under `training_queries.` in the state dict, so a checkpoint trained with them loads into the
plain model by dropping those keys, and a plain checkpoint fine-tuned with them fills them from group 0
(`model.query_groups_init=copy`) or keeps their fresh initialisation (`fresh`, the default: copies of group 0
get the same matches as group 0, so they add no supervision until dropout tells them apart).
"""

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# Limit on query_groups x num_queries + one_to_many_queries: the decoder's self-attention is quadratic in it.
MAX_TRAINING_QUERIES = 4096
PREFIX = "training_queries."
INITS = ("copy", "fresh")


def check_training_queries(num_queries: int, query_groups: int, one_to_many_queries: int, init: str) -> None:
    """Raise ValueError naming the key and what is valid."""
    if not isinstance(query_groups, int) or query_groups < 1:
        raise ValueError(f"model.query_groups must be an integer >= 1 (1 = the paper's DETR), got {query_groups!r}")
    if not isinstance(one_to_many_queries, int) or one_to_many_queries < 0:
        raise ValueError(f"model.one_to_many_queries must be an integer >= 0 (0 = off), got {one_to_many_queries!r}")
    total = query_groups * num_queries + one_to_many_queries
    if total > MAX_TRAINING_QUERIES:
        raise ValueError(
            f"model.query_groups ({query_groups}) x model.num_queries ({num_queries}) + model.one_to_many_queries "
            f"({one_to_many_queries}) = {total} training queries; at most {MAX_TRAINING_QUERIES} are valid"
        )
    if init not in INITS:
        raise ValueError(f"model.query_groups_init must be one of {list(INITS)}, got {init!r}")


class TrainingQueries(nn.Module):
    """The training-only query embeddings: `groups` [(K - 1) x Q, C] and `one_to_many` [M, C] (absent when 0)."""

    def __init__(self, num_queries: int, d_model: int, query_groups: int, one_to_many_queries: int, init: str):
        super().__init__()
        self.num_queries, self.query_groups, self.one_to_many_queries = num_queries, query_groups, one_to_many_queries
        self.init = init
        if query_groups > 1:
            self.groups = nn.Parameter(torch.empty((query_groups - 1) * num_queries, d_model))
            nn.init.normal_(self.groups)  # nn.Embedding's own initialisation
        if one_to_many_queries:
            self.one_to_many = nn.Parameter(torch.empty(one_to_many_queries, d_model))
            nn.init.normal_(self.one_to_many)

    def queries(self, group0: torch.Tensor) -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
        """-> all training queries [K x Q + M, C] and their self-attention blocks as runs of (size, count)."""
        parts, blocks = [group0], [(self.num_queries, self.query_groups)]
        if self.query_groups > 1:
            parts.append(self.groups)
        if self.one_to_many_queries:
            parts.append(self.one_to_many)
            blocks.append((self.one_to_many_queries, 1))
        return torch.cat(parts), tuple(blocks)

    def split_outputs(self, logits: torch.Tensor, boxes: torch.Tensor, aux_loss: bool) -> dict:
        """logits [L, B, K x Q + M, K+1] and boxes [L, B, K x Q + M, 4] -> the outputs dict: pred_* (and
        aux_outputs) over the K groups, `query_groups` = K, and `one_to_many` (a dict alike) when M > 0."""
        grouped = self.query_groups * self.num_queries
        out = _layers_dict(logits[..., :grouped, :], boxes[..., :grouped, :], aux_loss)
        out["query_groups"] = self.query_groups
        if self.one_to_many_queries:
            out["one_to_many"] = _layers_dict(logits[..., grouped:, :], boxes[..., grouped:, :], aux_loss)
        return out


def _layers_dict(logits: torch.Tensor, boxes: torch.Tensor, aux_loss: bool) -> dict:
    out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
    if aux_loss:
        out["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1], strict=True)]
    return out


def blockwise_self_attention(attend, x_pos: torch.Tensor, x: torch.Tensor, blocks) -> torch.Tensor:
    """attend(x_pos, x) (self-attention: queries and keys x_pos, values x) with each query attending only within
    its block: [L, B, C] sequences, blocks as runs of (size, count) covering L. A run of equal blocks is folded
    into the batch (one call, no mask): the same attention calls with fast_kernels auto or off."""
    outputs, start = [], 0
    batch, channels = x.shape[1:]
    for size, count in blocks:
        end = start + size * count
        q, v = x_pos[start:end], x[start:end]
        if count > 1:  # [count x size, B, C] -> [size, count x B, C]
            q = q.reshape(count, size, batch, channels).transpose(0, 1).reshape(size, count * batch, channels)
            v = v.reshape(count, size, batch, channels).transpose(0, 1).reshape(size, count * batch, channels)
        attended = attend(q, v)
        if count > 1:
            attended = attended.reshape(size, count, batch, channels).transpose(0, 1).reshape(end - start, batch, -1)
        outputs.append(attended)
        start = end
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def fit_training_queries(model: nn.Module, state: dict) -> tuple[dict, str | None]:
    """A checkpoint's state dict made to fit `model`'s training-only queries -> (state, what was done or None).

    Keys the model lacks (a K > 1 checkpoint into K = 1) are dropped; keys the model has and the checkpoint
    lacks (a plain checkpoint fine-tuned with K > 1) are filled from the checkpoint's group 0 (`copy`: group 0
    tiled) or left to the model's fresh initialisation (`fresh`)."""
    extra = getattr(model, "training_queries", None)
    state = {k: v for k, v in state.items() if not k.startswith(PREFIX) or (extra is not None and k in _keys(extra))}
    if extra is None or all(key in state for key in _keys(extra)):
        return state, None
    group0 = state.get("query_embed.weight")
    own = extra.state_dict()
    for name, initial in own.items():
        if PREFIX + name in state:
            continue
        copy = extra.init == "copy" and group0 is not None and group0.shape == (extra.num_queries, initial.shape[1])
        tiled = group0.repeat(-(-len(initial) // len(group0)), 1)[: len(initial)].to(initial.dtype) if copy else None
        state[PREFIX + name] = tiled if copy else initial
    how = "copies of group 0" if extra.init == "copy" and group0 is not None else "fresh"
    log.info("training-only queries (%s) filled with %s", ", ".join(own), how)
    model.query_groups_init = how
    return state, how


def _keys(extra: nn.Module) -> set[str]:
    return {PREFIX + name for name in extra.state_dict()}
