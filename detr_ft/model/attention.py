"""Multi-head attention through torch's fused scaled_dot_product_attention.

Computes what torch.nn.MultiheadAttention computes (the official DETR's attention), under the same parameter
names (`in_proj_weight` [3C, C] holding q, k and v in that order, `in_proj_bias`, `out_proj`), so official and
Hugging Face weights load as before; it returns no attention weights, which DETR never uses, and that is what
lets the fused kernels run.
"""

import torch
import torch.nn.functional as F
from torch import nn

from detr_ft.model.dropout import dropout


class MultiheadAttention(nn.Module):
    """Sequences [length, batch, channels]; key_padding_mask [batch, key length], True = ignore that key."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        # Created and initialised in nn.MultiheadAttention's order, so a seeded model starts from the same weights.
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """query [L, B, C], key and value [S, B, C] -> [L, B, C]."""
        weight, bias = self.in_proj_weight, self.in_proj_bias
        channels = self.embed_dim
        if query is key:  # self-attention (queries and keys both carry the positions): one matmul for both
            q, k = F.linear(query, weight[: 2 * channels], bias[: 2 * channels]).chunk(2, dim=-1)
        else:
            q = F.linear(query, weight[:channels], bias[:channels])
            k = F.linear(key, weight[channels : 2 * channels], bias[channels : 2 * channels])
        v = F.linear(value, weight[2 * channels :], bias[2 * channels :])
        mask = None
        if key_padding_mask is not None:  # SDPA's boolean mask is True where attention is allowed
            mask = ~key_padding_mask[:, None, None, :]
        dropout_p = self.dropout if self.training else 0.0
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if query.device.type == "cpu" and (dropout_p or q.dtype in (torch.bfloat16, torch.float16)):
            # SDPA's CPU kernels have no dropout (it would fall back to this same computation with torch's slow
            # per-element Bernoulli masks), and its 16-bit CPU kernel is 8x slower than its fp32 one here.
            attended = _explicit_attention(q, k, v, mask, dropout_p)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # [B, H, L, d]
        length, batch = query.shape[:2]
        return self.out_proj(attended.permute(2, 0, 1, 3).reshape(length, batch, channels))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[L, B, C] -> [B, H, L, C / H]."""
        length, batch, _ = x.shape
        return x.reshape(length, batch, self.num_heads, -1).permute(1, 2, 0, 3)


def _explicit_attention(q, k, v, allowed: torch.Tensor | None, p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) with keys where `allowed` is False excluded, dropout `p`, times v; the softmax in
    fp32 whatever the inputs' precision."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1)).float()
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.matmul(dropout(scores.softmax(dim=-1), p, training=p > 0).to(v.dtype), v)
