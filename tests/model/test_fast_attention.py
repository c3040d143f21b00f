"""detr_ft.model.fast's fused-kernel attention computes what torch.nn.MultiheadAttention (the official DETR's)
computes, and apply_fast_kernels turns the plain modules into it without changing a weight."""

import pytest
import torch
from torch import nn

from detr_ft.model.fast import apply_fast_kernels
from detr_ft.model.fast.attention import MultiheadAttention, _explicit_attention
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
    got, weights = ours(query, memory, value, key_padding_mask=mask)
    assert weights is None
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
    assert torch.allclose(ours(query, memory, memory, mask)[0], ours(query, changed, changed, mask)[0], atol=1e-6)


def test_seeded_initialisation_is_torch_multihead_attentions():
    """Same random stream as before the switch: a seeded run starts from the same weights."""
    torch.manual_seed(3)
    reference = nn.MultiheadAttention(32, 4).state_dict()
    torch.manual_seed(3)
    ours = MultiheadAttention(32, 4).state_dict()
    assert list(ours) == list(reference)
    assert all(torch.equal(ours[k], reference[k]) for k in ours)


def test_transformer_with_fast_attention_equals_the_plain_one():
    """The whole encoder-decoder, masks included: the plain Transformer (torch's attention modules) against the
    same module turned fast in place, which keeps every weight (same state dict)."""
    torch.manual_seed(0)
    plain = Transformer(32, 4, 2, 2, 64, dropout=0.0).eval()
    torch.manual_seed(0)
    fast = apply_fast_kernels(Transformer(32, 4, 2, 2, 64, dropout=0.0).eval())
    assert all(type(m) is not nn.MultiheadAttention for m in fast.modules())
    assert any(isinstance(m, MultiheadAttention) for m in fast.modules())
    plain_state, fast_state = plain.state_dict(), fast.state_dict()
    assert list(plain_state) == list(fast_state) and all(
        torch.equal(plain_state[k], fast_state[k]) for k in plain_state
    )
    src, pos = torch.randn(2, 32, 4, 5), torch.randn(2, 32, 4, 5)
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[1, :, 3:] = True
    queries = torch.randn(6, 32)
    assert (fast(src, mask, queries, pos) - plain(src, mask, queries, pos)).abs().max() < 1e-4


def test_explicit_cpu_attention_equals_sdpa_with_padding_masks():
    """The path taken on the CPU for dropout and 16-bit inputs computes what SDPA computes."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, length, 8, generator=generator) for length in (5, 7, 7))
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 4:] = True
    allowed = ~padding[:, None, None, :]
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert torch.allclose(_explicit_attention(q, k, v, allowed, 0.0), expected, atol=1e-6)
    half = _explicit_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), allowed, 0.0)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), expected, atol=0.05)
