"""nn.MultiheadAttention computed through torch's fused scaled_dot_product_attention.

Computes what torch.nn.MultiheadAttention computes (the official DETR's attention) with its own parameters
(`in_proj_weight` [3C, C] holding q, k and v in that order, `in_proj_bias`, `out_proj`): `apply_fast_kernels`
turns an nn.MultiheadAttention into one in place, so every weight file loads as before. It returns no attention
weights (None), which DETR never uses, and that is what lets the fused kernels run.
"""

import torch
import torch.nn.functional as F
from torch import nn

from detr_ft.model.fast.dropout import dropout


def can_be_fused(attention: nn.MultiheadAttention) -> bool:
    """The layout this path computes: [L, B, C] sequences, one packed bias-carrying projection, no extras."""
    return (
        not attention.batch_first
        and attention._qkv_same_embed_dim
        and attention.in_proj_bias is not None
        and attention.bias_k is None
        and not attention.add_zero_attn
    )


class MultiheadAttention(nn.MultiheadAttention):
    """Sequences [length, batch, channels]; key_padding_mask [batch, key length], True = ignore that key."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """query [L, B, C], key and value [S, B, C] -> ([L, B, C], None); `need_weights` is ignored."""
        if attn_mask is not None:
            raise ValueError("the fused attention of detr_ft.model.fast takes no attn_mask (DETR passes none)")
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
        return self.out_proj(attended.permute(2, 0, 1, 3).reshape(length, batch, channels)), None

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
