"""The DETR encoder-decoder transformer (post-norm as the paper; pre-norm as an option).

Positions are added to queries and keys at every attention (never to values); the decoder starts from
zeros and its object queries are positions too. Sequences are [length, batch, channels].
"""

import torch
import torch.nn.functional as F
from torch import nn

from detr_ft.model.query_groups import blockwise_self_attention


class _Layer(nn.Module):
    """What encoder and decoder layers share: self-attention, the feed-forward block, `num_norms` norms
    and dropouts, under the official key names (self_attn, linear1/2, norm1..n) so their weights load as is."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, normalize_before, num_norms, cross_attention):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        if cross_attention:
            self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        for index in range(1, num_norms + 1):
            setattr(self, f"norm{index}", nn.LayerNorm(d_model))
        self.dropout = nn.Dropout(dropout)
        for index in range(1, num_norms + 1):
            setattr(self, f"dropout{index}", nn.Dropout(dropout))
        self.normalize_before = normalize_before

    def _attend(self, attention: nn.MultiheadAttention, query, key, value, key_padding_mask=None) -> torch.Tensor:
        """The attended values (nn.MultiheadAttention also returns the attention weights, unused)."""
        return attention(query, key, value=value, key_padding_mask=key_padding_mask)[0]

    def _feedforward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class EncoderLayer(_Layer):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, normalize_before: bool):
        super().__init__(d_model, nhead, dim_feedforward, dropout, normalize_before, num_norms=2, cross_attention=False)

    def forward(self, src, padding_mask, pos):
        if self.normalize_before:
            x = self.norm1(src)
            x_pos = x + pos
            src = src + self.dropout1(self._attend(self.self_attn, x_pos, x_pos, x, key_padding_mask=padding_mask))
            return src + self.dropout2(self._feedforward(self.norm2(src)))
        src_pos = src + pos
        attended = self._attend(self.self_attn, src_pos, src_pos, src, key_padding_mask=padding_mask)
        src = self.norm1(src + self.dropout1(attended))
        return self.norm2(src + self.dropout2(self._feedforward(src)))


class DecoderLayer(_Layer):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, normalize_before: bool):
        super().__init__(d_model, nhead, dim_feedforward, dropout, normalize_before, num_norms=3, cross_attention=True)

    def forward(self, tgt, memory, memory_padding_mask, pos, query_pos, query_blocks=None):
        """query_blocks: None (every query sees every other) or runs of (size, count) of queries that see only
        their own block (training-only query groups, model/query_groups.py)."""
        if self.normalize_before:
            x = self.norm1(tgt)
            x_pos = x + query_pos
            tgt = tgt + self.dropout1(self._self_attention(x_pos, x, query_blocks))
            x = self.norm2(tgt)
            cross = self._attend(
                self.multihead_attn, x + query_pos, memory + pos, memory, key_padding_mask=memory_padding_mask
            )
            tgt = tgt + self.dropout2(cross)
            return tgt + self.dropout3(self._feedforward(self.norm3(tgt)))
        tgt_pos = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self._self_attention(tgt_pos, tgt, query_blocks)))
        cross = self._attend(
            self.multihead_attn, tgt + query_pos, memory + pos, memory, key_padding_mask=memory_padding_mask
        )
        tgt = self.norm2(tgt + self.dropout2(cross))
        return self.norm3(tgt + self.dropout3(self._feedforward(tgt)))

    def _self_attention(self, x_pos, x, query_blocks):
        def attend(query_key, value):
            return self._attend(self.self_attn, query_key, query_key, value)

        return attend(x_pos, x) if query_blocks is None else blockwise_self_attention(attend, x_pos, x, query_blocks)


class Encoder(nn.Module):
    def __init__(self, layers: list[EncoderLayer], norm: nn.LayerNorm | None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm  # only with pre-norm layers: their output is not normalised otherwise

    def forward(self, src, padding_mask, pos):
        for layer in self.layers:
            src = layer(src, padding_mask, pos)
        return self.norm(src) if self.norm is not None else src


class Decoder(nn.Module):
    def __init__(self, layers: list[DecoderLayer], norm: nn.LayerNorm):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(self, tgt, memory, memory_padding_mask, pos, query_pos, query_blocks=None) -> torch.Tensor:
        """-> [num_layers, Q, B, C]: every layer's normalised output (the earlier ones feed auxiliary losses)."""
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_padding_mask, pos, query_pos, query_blocks)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs)


class Transformer(nn.Module):
    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        normalize_before: bool = False,
    ):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"model.transformer.d_model ({d_model}) must be divisible by nhead ({nhead})")
        sizes = (d_model, nhead, dim_feedforward, dropout, normalize_before)
        self.encoder = Encoder(
            [EncoderLayer(*sizes) for _ in range(num_encoder_layers)],
            nn.LayerNorm(d_model) if normalize_before else None,
        )
        self.decoder = Decoder([DecoderLayer(*sizes) for _ in range(num_decoder_layers)], nn.LayerNorm(d_model))
        self.d_model = d_model
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(self, src, mask, query_embed, pos, query_blocks=None) -> torch.Tensor:
        """src [B, C, h, w], mask [B, h, w], query_embed [Q, C], pos [B, C, h, w] -> [L, B, Q, C];
        query_blocks: see DecoderLayer.forward."""
        batch = src.shape[0]
        src = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1)
        query_pos = query_embed.unsqueeze(1).repeat(1, batch, 1)
        mask = mask.flatten(1)
        memory = self.encoder(src, mask, pos)
        decoded = self.decoder(torch.zeros_like(query_pos), memory, mask, pos, query_pos, query_blocks)
        return decoded.transpose(1, 2)
