"""Output head and mean cross-entropy in one pass over row chunks, gradients included.

`F.cross_entropy(h @ W.T, y)` materialises the (tokens x vocab) logits, a log-softmax copy of
them, a dense zero-filled gradient of the NLL and a separate softmax-backward pass: on a CPU
with a small model that memory traffic, not the matmuls, is most of a training step. Here a
chunk of rows at a time goes through logits -> log-softmax -> loss -> (softmax - one-hot), all
in one buffer small enough to stay in cache, and the chunk's gradients w.r.t. h and W are
computed right there. Backward only scales the stored gradients by the incoming grad_output.
Log-softmax, loss and gradients are fp32 (as `logits.float()` gave); the three matmuls run in
autocast's dtype when autocast is on (bf16 on CUDA), as the model's own head did, else in fp32.
"""

from __future__ import annotations

import torch

# ~2 MB of logits per chunk stays in L2/L3; at least 256 rows, because every chunk's
# g^T @ h_c passes over all of grad_W (51 MB for a 50k x 256 head) and needs that many rows to
# amortise it. Measured in benchmarks/README.md (training): flat between 64 and 512 rows at
# vocab 2048, best at 256-512 rows at vocab 50432.
CHUNK_BYTES = 2 * 1024 * 1024
MIN_CHUNK_ROWS = 256


def default_chunk_rows(vocab_size: int) -> int:
    return max(MIN_CHUNK_ROWS, CHUNK_BYTES // (4 * vocab_size))


def _check_inputs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int) -> None:
    if hidden.dim() != 2:
        raise ValueError(f"hidden: expected (tokens, d_model), got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"weight: expected (vocab, {hidden.shape[1]}), got shape {tuple(weight.shape)}")
    if targets.dim() != 1 or targets.shape[0] != hidden.shape[0]:
        raise ValueError(f"targets: expected ({hidden.shape[0]},), got shape {tuple(targets.shape)}")
    if hidden.shape[0] == 0:
        raise ValueError("hidden: no rows (an empty batch has no mean loss)")
    if not hidden.is_floating_point() or not weight.is_floating_point():
        raise ValueError(f"hidden/weight: expected floating dtypes, got {hidden.dtype} and {weight.dtype}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets: expected int64 or int32 class indices, got {targets.dtype}")
    if not (hidden.device == weight.device == targets.device):
        raise ValueError(f"hidden/weight/targets: on different devices {hidden.device}, {weight.device}, {targets.device}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows: must be >= 1, got {chunk_rows}")
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= weight.shape[0]:
        raise ValueError(f"targets: class indices must lie in [0, {weight.shape[0]}), got min {low} max {high}")


class _HeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_rows, matmul_dtype):
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            exact = matmul_dtype == torch.float32  # else bf16 matmuls (autocast), fp32 softmax
            h, w = hidden.detach().to(matmul_dtype), weight.detach().to(matmul_dtype)
            rows, vocab = h.shape[0], w.shape[0]
            targets = targets.long()
            with_grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
            grad_h = torch.empty(h.shape, dtype=torch.float32, device=h.device)
            grad_w = torch.empty(w.shape, dtype=torch.float32, device=h.device)
            buffer = torch.empty((min(chunk_rows, rows), vocab), dtype=torch.float32, device=h.device)
            loss_sum = torch.zeros((), dtype=torch.float32, device=h.device)
            for start in range(0, rows, chunk_rows):
                stop = min(start + chunk_rows, rows)
                h_chunk, y_chunk = h[start:stop], targets[start:stop, None]
                logits = buffer[: stop - start]
                if exact:
                    torch.mm(h_chunk, w.t(), out=logits)
                else:
                    logits.copy_(h_chunk @ w.t())
                torch.log_softmax(logits, dim=1, out=logits)  # row-wise, safe in place
                loss_sum -= logits.gather(1, y_chunk).sum()
                if not with_grads:
                    continue
                logits.exp_()  # softmax: the gradient of the summed loss w.r.t. the logits ...
                logits.scatter_add_(1, y_chunk, torch.full_like(y_chunk, -1.0, dtype=logits.dtype))  # ... - one-hot
                if exact:
                    torch.mm(logits, w, out=grad_h[start:stop])
                    if start == 0:
                        torch.mm(logits.t(), h_chunk, out=grad_w)
                    else:
                        grad_w.addmm_(logits.t(), h_chunk)
                else:
                    g = logits.to(matmul_dtype)
                    grad_h[start:stop] = g @ w
                    if start == 0:
                        grad_w.copy_(g.t() @ h_chunk)
                    else:
                        grad_w += g.t() @ h_chunk  # summed across chunks in fp32
        ctx.save_for_backward(grad_h, grad_w)
        ctx.rows = rows
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return loss_sum / rows

    @staticmethod
    def backward(ctx, grad_output):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_output.float() / ctx.rows
        hidden_dtype, weight_dtype = ctx.dtypes
        grad_hidden = (grad_h * scale).to(hidden_dtype) if ctx.needs_input_grad[0] else None
        grad_weight = (grad_w * scale).to(weight_dtype) if ctx.needs_input_grad[1] else None
        return grad_hidden, grad_weight, None, None, None


def head_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int | None = None
) -> torch.Tensor:
    """Mean of `F.cross_entropy(hidden @ weight.T, targets)` without materialising the logits.

    hidden: (tokens, d_model); weight: (vocab, d_model), the output head; targets: (tokens,) class
    indices, every one counted (no ignore index). Returns an fp32 scalar; backward gives the
    gradients in hidden's and weight's dtypes. One backward per forward (the gradients are
    computed in the forward pass and kept until then).
    """
    chunk_rows = default_chunk_rows(weight.shape[0] if weight.dim() == 2 else 1) if chunk_rows is None else chunk_rows
    _check_inputs(hidden, weight, targets, chunk_rows)
    device_type = hidden.device.type
    low_precision = torch.is_autocast_enabled(device_type)
    matmul_dtype = torch.get_autocast_dtype(device_type) if low_precision else torch.float32
    return _HeadCrossEntropy.apply(hidden, weight, targets, chunk_rows, matmul_dtype)
