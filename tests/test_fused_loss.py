"""The chunked fused head + cross-entropy equals F.cross_entropy(h @ W.T, y), value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.fused_loss import default_chunk_rows, head_cross_entropy


def _inputs(rows: int, d_model: int, vocab: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, d_model, generator=gen, dtype=torch.float64).float().requires_grad_()
    weight = (torch.randn(vocab, d_model, generator=gen) * 0.3).requires_grad_()
    targets = torch.randint(0, vocab, (rows,), generator=gen)
    return hidden, weight, targets


def _reference(hidden, weight, targets):
    h, w = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    loss = F.cross_entropy(h @ w.T, targets)
    loss.backward()
    return loss.item(), h.grad, w.grad


@pytest.mark.parametrize("rows, d_model, vocab, chunk_rows", [
    (1, 8, 5, None),        # one row
    (64, 16, 100, 16),      # exact multiple of the chunk
    (100, 16, 100, 16),     # last chunk partial (4 rows)
    (37, 12, 2048, 37),     # one chunk exactly
    (37, 12, 2048, 1),      # one row per chunk
    (300, 32, 777, None),   # default chunking (256 rows): 256 + 44
])
def test_loss_and_gradients_match_cross_entropy(rows, d_model, vocab, chunk_rows):
    hidden, weight, targets = _inputs(rows, d_model, vocab)
    expected_loss, expected_h, expected_w = _reference(hidden, weight, targets)
    loss = head_cross_entropy(hidden, weight, targets, chunk_rows)
    (loss * 2.5).backward()  # backward scales by the incoming gradient
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5)
    torch.testing.assert_close(hidden.grad.double(), 2.5 * expected_h, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(weight.grad.double(), 2.5 * expected_w, rtol=1e-4, atol=1e-6)


def test_confident_wrong_predictions_stay_finite():
    hidden, weight, targets = _inputs(20, 4, 50)
    hidden = (hidden.detach() * 200).requires_grad_()  # logits in the thousands: exp would overflow
    expected_loss, expected_h, _ = _reference(hidden, weight, targets)
    loss = head_cross_entropy(hidden, weight, targets, 7)
    loss.backward()
    assert expected_loss > 100 and loss.item() == pytest.approx(expected_loss, rel=1e-5)
    torch.testing.assert_close(hidden.grad.double(), expected_h, rtol=1e-4, atol=1e-5)


def test_only_the_gradients_asked_for_are_returned():
    hidden, weight, targets = _inputs(50, 8, 30)
    frozen = weight.detach()
    loss = head_cross_entropy(hidden, frozen, targets, 16)
    loss.backward()
    assert hidden.grad is not None and frozen.grad is None
    with torch.no_grad():
        assert head_cross_entropy(hidden, weight, targets).item() == pytest.approx(loss.item(), rel=1e-6)


def test_bf16_autocast_runs_matmuls_in_bf16_and_the_loss_in_fp32():
    hidden, weight, targets = _inputs(90, 16, 300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = hidden @ weight.T  # what the model's own head gives under autocast
        expected = F.cross_entropy(logits.float(), targets)
        loss = head_cross_entropy(hidden, weight, targets, 32)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected.item(), rel=1e-3)
    loss.backward()
    _, exact_h, exact_w = _reference(hidden, weight, targets)
    assert hidden.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32
    torch.testing.assert_close(hidden.grad.double(), exact_h, rtol=0.05, atol=2e-3)
    torch.testing.assert_close(weight.grad.double(), exact_w, rtol=0.05, atol=2e-3)


def test_default_chunk_keeps_about_2mb_of_logits_but_at_least_256_rows():
    assert default_chunk_rows(2048) == 256
    assert default_chunk_rows(50432) == 256
    assert default_chunk_rows(64) == 8192


@pytest.mark.parametrize("change, message", [
    (lambda h, w, y: (h[0], w, y), r"hidden: expected \(tokens, d_model\), got shape \(8,\)"),
    (lambda h, w, y: (h, w[:, :4], y), r"weight: expected \(vocab, 8\), got shape \(30, 4\)"),
    (lambda h, w, y: (h, w, y[:-1]), r"targets: expected \(50,\), got shape \(49,\)"),
    (lambda h, w, y: (h[:0], w, y[:0]), "hidden: no rows"),
    (lambda h, w, y: (h, w, y.float()), "targets: expected int64 or int32 class indices, got torch.float32"),
    (lambda h, w, y: (h.long(), w, y), "hidden/weight: expected floating dtypes, got torch.int64"),
    (lambda h, w, y: (h, w, torch.where(y == y[0], 30, y)), r"class indices must lie in \[0, 30\), got min \d+ max 30"),
    (lambda h, w, y: (h, w, torch.where(y == y[0], -1, y)), r"class indices must lie in \[0, 30\), got min -1"),
])
def test_bad_inputs_are_refused(change, message):
    hidden, weight, targets = _inputs(50, 8, 30)
    with pytest.raises(ValueError, match=message):
        head_cross_entropy(*change(hidden, weight, targets))
    with pytest.raises(ValueError, match="chunk_rows: must be >= 1, got 0"):
        head_cross_entropy(hidden, weight, targets, 0)
