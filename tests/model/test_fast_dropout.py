"""The CPU dropout: independent keeps at rate 1 - p, kept values scaled so the expectation is unchanged,
reproducible from torch's seed, and torch's own dropout elsewhere."""

import pytest
import torch

from detr_ft.model.fast.attention import MultiheadAttention
from detr_ft.model.fast.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keeps_each_element_at_rate_one_minus_p_and_preserves_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(400, 1000)
    y = dropout(x, p, training=True)
    kept = y != 0
    # 400k Bernoulli draws: the standard error of the keep rate is below 0.0008.
    assert abs(kept.float().mean().item() - (1 - p)) < 0.004
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)), rtol=1e-4)
    # Neighbouring elements (which share a 64-bit draw) are independent: P(both kept) = (1 - p)^2.
    pairs = (kept[:, 0::2] & kept[:, 1::2]).float().mean().item()
    assert abs(pairs - (1 - p) ** 2) < 0.005


def test_same_seed_same_masks_and_other_seeds_other_masks():
    x = torch.randn(64, 64)
    torch.manual_seed(3)
    first = dropout(x, 0.1, training=True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, training=True), first)
    torch.manual_seed(4)
    assert not torch.equal(dropout(x, 0.1, training=True), first)


def test_identity_outside_training_and_at_p_zero():
    x = torch.randn(8, 8)
    assert dropout(x, 0.1, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert torch.equal(Dropout(0.1).eval()(x), x)


def test_gradient_is_the_mask():
    torch.manual_seed(0)
    x = torch.randn(32, 32, requires_grad=True)
    y = dropout(x, 0.3, training=True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - round(0.3 * 2**15) / 2**15)))
    assert (x.grad[~kept] == 0).all()


def test_bf16_inputs_stay_bf16():
    x = torch.randn(16, 16).to(torch.bfloat16)
    assert dropout(x, 0.1, training=True).dtype == torch.bfloat16
    assert keep_mask(torch.Size([4, 4]), 0.1, torch.float32).dtype == torch.float32


def test_attention_dropout_drops_attention_weights_after_the_softmax():
    """Training-mode attention on the CPU = softmax(q k^T / sqrt(d)) * mask @ v with this module's masks."""
    torch.manual_seed(0)
    attention = MultiheadAttention(16, 2, dropout=0.5).train()
    query = torch.randn(5, 1, 16)
    key = torch.randn(7, 1, 16)
    torch.manual_seed(1)
    out, _ = attention(query, key, key)
    with torch.no_grad():
        w, b = attention.in_proj_weight, attention.in_proj_bias
        q, k, v = (
            torch.nn.functional.linear(x, w[i * 16 : (i + 1) * 16], b[i * 16 : (i + 1) * 16])
            for i, x in enumerate((query, key, key))
        )
        heads = lambda t: t.reshape(t.shape[0], 1, 2, 8).permute(1, 2, 0, 3)  # noqa: E731
        weights = (heads(q) @ heads(k).transpose(-2, -1) / 8**0.5).softmax(-1)
        torch.manual_seed(1)
        dropped = weights * keep_mask(weights.shape, 0.5, torch.float32)
        expected = attention.out_proj((dropped @ heads(v)).permute(2, 0, 1, 3).reshape(5, 1, 16))
    assert torch.allclose(out, expected, atol=1e-6)
    attention.eval()
    assert not torch.allclose(attention(query, key, key)[0], out)


def test_a_p_that_rounds_to_one_drops_everything_instead_of_dividing_by_zero():
    assert torch.equal(dropout(torch.ones(16), 1 - 1e-6, training=True), torch.zeros(16))
