"""Train the tinyllama_1_1b shape in bf16 on one GPU for a few dozen steps: tokens/s and MFU.

    python benchmarks/bench_gpu.py                 # on a GPU machine (needs only torch + transformers)
    python benchmarks/bench_gpu.py --tiny          # a few-second smoke run of the same code path on CPU

Random tokens (the data path is benchmarked elsewhere). fp32 master weights, bf16 autocast,
SDPA (flash) attention, fused AdamW, torch.compile unless --no-compile, activation
checkpointing only with --checkpointing. MFU = achieved FLOP/s / peak, with FLOPs per token
6 x (attention + MLP projections + output head) + 12 x L x d x T, against both the nominal
dense bf16 peak of the GPU and the FLOP/s a large bf16 matmul reaches here.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from the vendors' data sheets.
NOMINAL_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}

TINYLLAMA_1_1B = dict(n_layers=22, n_heads=16, d_model=2048, d_mlp=5632, vocab=50432, seq_len=2048)
TINY = dict(n_layers=2, n_heads=4, d_model=64, d_mlp=128, vocab=512, seq_len=64)


def flops_per_token(n_layers, d_model, d_mlp, vocab, seq_len, **_) -> float:
    matmul_params = n_layers * (4 * d_model * d_model + 3 * d_model * d_mlp) + d_model * vocab
    return 6.0 * matmul_params + 12.0 * n_layers * d_model * seq_len


def build(shape: dict, device: str, checkpointing: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape["vocab"], hidden_size=shape["d_model"], intermediate_size=shape["d_mlp"],
        num_hidden_layers=shape["n_layers"], num_attention_heads=shape["n_heads"],
        num_key_value_heads=shape["n_heads"], max_position_embeddings=shape["seq_len"],
        tie_word_embeddings=False, attn_implementation="sdpa", use_cache=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def measured_matmul_peak(device: str, dtype, size: int, repeats: int) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b
    sync()
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync()
        best = max(best, repeats * 2 * size ** 3 / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on CPU: checks the code path only")
    parser.add_argument("--micro-batch", type=int, help="sequences per step (default 8; --tiny: 2)")
    parser.add_argument("--steps", type=int, help="timed steps (default 20; --tiny: 3)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing (saves memory, costs ~1/3 more compute)")
    args = parser.parse_args()

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible: run on a GPU machine, or use --tiny for the CPU smoke run")
    shape = TINY if args.tiny else TINYLLAMA_1_1B
    micro_batch = args.micro_batch or (2 if args.tiny else 8)
    steps = args.steps or (3 if args.tiny else 20)
    compile_model = not args.no_compile and not args.tiny  # inductor on CPU takes minutes: off for the smoke run
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model = build(shape, device, args.checkpointing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                  fused=device == "cuda")
    seq_len = shape["seq_len"]

    def loss_of(ids):
        with torch.autocast(device, dtype=torch.bfloat16):
            logits = model(input_ids=ids[:, :-1]).logits
        return F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())

    step_loss = torch.compile(loss_of) if compile_model else loss_of
    generator = torch.Generator(device="cpu").manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        ids = torch.randint(0, shape["vocab"], (micro_batch, seq_len + 1), generator=generator).to(device, non_blocking=True)
        loss = step_loss(ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - start
    final_loss = float(loss.detach())

    tokens_per_s = steps * micro_batch * seq_len / seconds
    achieved = tokens_per_s * flops_per_token(**shape)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    nominal = next((v for k, v in NOMINAL_BF16_PEAK.items() if k in name), None)
    measured = measured_matmul_peak(device, torch.bfloat16, 256 if args.tiny else 8192, 2 if args.tiny else 50)
    params = sum(p.numel() for p in model.parameters())
    print(f"device: {name}; torch {torch.__version__}; compile {compile_model}; checkpointing {args.checkpointing}")
    print(f"model: {params / 1e6:,.1f} M params, L={shape['n_layers']} d={shape['d_model']} mlp={shape['d_mlp']} "
          f"vocab={shape['vocab']}; micro batch {micro_batch} x {seq_len} tokens, bf16 autocast, {'fused' if device == 'cuda' else 'foreach'} AdamW")
    print(f"warm-up {args.warmup} steps (incl. compile): {warmup_s:.1f} s; timed {steps} steps: {seconds:.2f} s; "
          f"final loss {final_loss:.3f}")
    if device == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"throughput: {tokens_per_s:,.0f} tokens/s; {achieved / 1e12:.1f} TFLOP/s "
          f"({flops_per_token(**shape) / 1e9:.3f} GFLOP per token)")
    print(f"bf16 matmul measured here: {measured / 1e12:.1f} TFLOP/s -> MFU vs measured {100 * achieved / measured:.1f}%")
    if nominal:
        print(f"nominal dense bf16 peak {nominal / 1e12:.0f} TFLOP/s -> MFU {100 * achieved / nominal:.1f}% (goal >= 50%)")
    else:
        print("nominal peak unknown for this device: MFU against the measured matmul only")


if __name__ == "__main__":
    main()
