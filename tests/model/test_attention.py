"""Our fused-kernel attention computes what torch.nn.MultiheadAttention (the official DETR's) computes."""

import pytest
import torch
from torch import nn

from detr_ft.model.attention import MultiheadAttention
from detr_ft.model.transformer import Transformer


def _pair(dropout: float = 0.0) -> tuple[nn.MultiheadAttention, MultiheadAttention]:
    reference = nn.MultiheadAttention(32, 4, dropout=dropout)
    ours = MultiheadAttention(32, 4, dropout=dropout)
    ours.load_state_dict(reference.state_dict())  # same parameter names and shapes
    with torch.no_grad():  # non-zero biases, so a swapped q/k/v slice would show
        ours.in_proj_bias.normal_()
        ours.out_proj.bias.normal_()
        reference.load_state_dict(ours.state_dict())
    return reference.eval(), ours.eval()


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_outputs_and_gradients_match_torch_multihead_attention_with_padding_masks(kind):
    torch.manual_seed(0)
    reference, ours = _pair()
    query = torch.randn(7, 3, 32, requires_grad=True)
    memory = query if kind == "self" else torch.randn(11, 3, 32)
    value = torch.randn(memory.shape[0], 3, 32)
    mask = torch.zeros(3, memory.shape[0], dtype=torch.bool)
    mask[1, 5:] = True  # padding at the end of one sequence, at the start of another
    mask[2, :2] = True
    expected = reference(query, memory, value, key_padding_mask=mask)[0]
    got = ours(query, memory, value, key_padding_mask=mask)
    assert (got - expected).abs().max() < 1e-5
    grad_expected = torch.autograd.grad(expected.square().sum(), [query, reference.in_proj_weight])
    grad_got = torch.autograd.grad(got.square().sum(), [query, ours.in_proj_weight])
    for a, b in zip(grad_got, grad_expected, strict=True):
        assert (a - b).abs().max() < 1e-4


def test_masked_keys_are_ignored():
    torch.manual_seed(0)
    _, ours = _pair()
    query, memory = torch.randn(4, 1, 32), torch.randn(6, 1, 32)
    mask = torch.tensor([[False, False, False, True, True, True]])
    changed = memory.clone()
    changed[3:] = torch.randn(3, 1, 32) * 10
    assert torch.allclose(ours(query, memory, memory, mask), ours(query, changed, changed, mask), atol=1e-6)


def test_seeded_initialisation_is_torch_multihead_attentions():
    """Same random stream as before the switch: a seeded run starts from the same weights."""
    torch.manual_seed(3)
    reference = nn.MultiheadAttention(32, 4).state_dict()
    torch.manual_seed(3)
    ours = MultiheadAttention(32, 4).state_dict()
    assert list(ours) == list(reference)
    assert all(torch.equal(ours[k], reference[k]) for k in ours)


def test_transformer_equals_one_built_on_torch_multihead_attention():
    """The whole encoder-decoder, masks included, against the same weights in torch's attention modules."""
    torch.manual_seed(0)
    ours = Transformer(32, 4, 2, 2, 64, dropout=0.0).eval()
    reference = Transformer(32, 4, 2, 2, 64, dropout=0.0).eval()
    for layer in [*reference.encoder.layers, *reference.decoder.layers]:
        for name in ("self_attn", "multihead_attn"):
            if hasattr(layer, name):
                torch_attention = nn.MultiheadAttention(32, 4)
                original_forward = torch_attention.forward
                torch_attention.forward = lambda *a, f=original_forward, **k: f(*a, **k)[0]
                setattr(layer, name, torch_attention)
    reference.load_state_dict(ours.state_dict())
    src, pos = torch.randn(2, 32, 4, 5), torch.randn(2, 32, 4, 5)
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[1, :, 3:] = True
    queries = torch.randn(6, 32)
    assert (ours(src, mask, queries, pos) - reference(src, mask, queries, pos)).abs().max() < 1e-4


def test_explicit_cpu_attention_equals_sdpa_with_padding_masks():
    """The path taken on the CPU for dropout and 16-bit inputs computes what SDPA computes."""
    from detr_ft.model.attention import _explicit_attention

    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, length, 8, generator=generator) for length in (5, 7, 7))
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 4:] = True
    allowed = ~padding[:, None, None, :]
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert torch.allclose(_explicit_attention(q, k, v, allowed, 0.0), expected, atol=1e-6)
    half = _explicit_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), allowed, 0.0)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), expected, atol=0.05)
