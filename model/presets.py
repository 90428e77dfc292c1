"""Model shapes and training hyperparameters as data.

RegMix's three published sizes, plus two CPU presets: `demo` (the embedded default: 64 of them
train on 2 cores in minutes) and `ci` (the smallest model that still learns mini-pile).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

GPT_NEOX_VOCAB = 50432  # GPT-NeoX's 50277 tokens padded to a multiple of 64, as RegMix


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    context: int = 2048
    vocab_size: int | None = GPT_NEOX_VOCAB  # None: the tokenizer's, padded to a multiple of 64
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    def llama_config(self, vocab_size: int | None = None, **overrides):
        from transformers import LlamaConfig

        vocab = self.vocab_size or pad_vocab(vocab_size or 0)
        if not vocab:
            raise ValueError("vocab_size: the preset takes it from the tokenizer, and none was given")
        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=self.d_model,
            intermediate_size=self.d_mlp,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_heads,  # plain multi-head attention
            max_position_embeddings=self.context,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,
            hidden_act="silu",
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
            **overrides,
        )

    def non_embedding_params(self) -> int:
        attention = 4 * self.d_model * self.d_model
        mlp = 3 * self.d_model * self.d_mlp
        norms = 2 * self.d_model
        return self.n_layers * (attention + mlp + norms) + self.d_model


@dataclass(frozen=True)
class TrainHyper:
    seq_len: int
    batch_sequences: int  # sequences per optimizer step (global batch)
    micro_batch: int  # sequences per forward pass; the rest is gradient accumulation
    steps: int
    lr: float
    min_lr: float
    warmup_steps: int
    schedule: str = "cosine"  # "cosine" (warm-up then cosine to min_lr) or "constant"
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 0  # 0: only at the end
    checkpoint_interval: int = 0  # 0: only at the end
    eval_tokens: int = 16384  # per domain, the fixed slice of its valid split

    @property
    def batch_tokens(self) -> int:
        return self.batch_sequences * self.seq_len

    @property
    def total_tokens(self) -> int:
        return self.batch_tokens * self.steps


@dataclass(frozen=True)
class Preset:
    name: str
    model: ModelShape
    train: TrainHyper
    tokenizer: str = "EleutherAI/gpt-neox-20b"  # "bpe:<vocab>" trains one on the corpus
    description: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **train_overrides) -> "Preset":
        """A copy with some training hyperparameters changed (e.g. steps for a quick run)."""
        unknown = set(train_overrides) - set(TrainHyper.__dataclass_fields__)
        if unknown:
            raise ValueError(f"preset overrides: unknown field(s) {sorted(unknown)}")
        return replace(self, train=replace(self.train, **train_overrides))


def pad_vocab(size: int, multiple: int = 64) -> int:
    return -(-size // multiple) * multiple if size else 0


_PROXY = TrainHyper(  # RegMix's 512 proxy runs: 1001 steps of 512 x 2048, constant lr
    seq_len=2048, batch_sequences=512, micro_batch=16, steps=1001, lr=4e-4, min_lr=4e-4,
    warmup_steps=100, schedule="constant", eval_interval=100, checkpoint_interval=500,
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "tinyllama_1M",
            ModelShape(n_layers=2, n_heads=8, d_model=256, d_mlp=512),
            _PROXY,
            description="RegMix proxy: ~1M non-embedding params, ~1B tokens",
        ),
        Preset(
            "tinyllama_60M",
            ModelShape(n_layers=10, n_heads=8, d_model=768, d_mlp=1536),
            _PROXY,
            description="RegMix 60M proxy, same schedule as the 1M proxies",
        ),
        Preset(
            "tinyllama_1_1b",
            ModelShape(n_layers=22, n_heads=16, d_model=2048, d_mlp=5632),
            TrainHyper(  # the 64 published models: 25B tokens, 1M-token batches
                seq_len=2048, batch_sequences=512, micro_batch=8, steps=25000, lr=4e-4,
                min_lr=1e-5, warmup_steps=1000, schedule="cosine", eval_interval=1000,
                checkpoint_interval=1000,
            ),
            description="The published suite sail/data-mixture-random-1b: 1.1B params, 25B tokens",
        ),
        Preset(
            "demo",
            ModelShape(n_layers=2, n_heads=4, d_model=64, d_mlp=192, context=128, vocab_size=None),
            TrainHyper(
                seq_len=128, batch_sequences=16, micro_batch=16, steps=100, lr=3e-3, min_lr=3e-4,
                warmup_steps=10, eval_interval=0, checkpoint_interval=50, eval_tokens=4096,
            ),
            tokenizer="bpe:2048",
            description="Embedded default for CPUs: 64 of these train on mini-pile in minutes",
        ),
        Preset(
            "ci",
            ModelShape(n_layers=1, n_heads=2, d_model=32, d_mlp=96, context=64, vocab_size=None),
            TrainHyper(
                seq_len=64, batch_sequences=8, micro_batch=8, steps=40, lr=5e-3, min_lr=5e-4,
                warmup_steps=4, eval_interval=20, checkpoint_interval=20, eval_tokens=2048,
            ),
            tokenizer="bpe:2048",
            description="The smallest preset that still learns mini-pile, for tests",
        ),
    ]
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"preset: unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
