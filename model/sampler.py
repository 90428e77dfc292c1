"""The data path of training: packed sequences drawn per-sequence by mixture weight.

Each training sequence picks its domain with probability equal to the domain's weight; within a
domain, packed windows are read in a shuffled order that is redrawn when the domain is exhausted
(the domain repeats). A domain of weight 0 is never read. All state is a few integers and one
RNG state, so a checkpoint can hold it and a resumed run reads exactly what an uninterrupted
one would have.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .domains import DOMAINS
from .mixture import Mixture


def _domain_seed(seed: int, domain: str, epoch: int) -> int:
    digest = hashlib.sha256(f"{seed}:{domain}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class MixtureSampler:
    def __init__(self, store, mixture: Mixture, seq_len: int, seed: int, split: str = "train"):
        self.seq_len = seq_len
        self.seed = seed
        self.domains = [d for d in DOMAINS if mixture[d] > 0]
        weights = np.array([mixture[d] for d in self.domains], dtype=np.float64)
        self.probs = weights / weights.sum()
        self.tokens = {}
        self.windows = {}
        for domain in self.domains:
            tokens = store.tokens(domain, split)
            count = (len(tokens) - 1) // seq_len  # windows of seq_len + 1 tokens, stride seq_len
            if count < 1:
                raise ValueError(
                    f"corpus domain {domain!r}: its {split} split has {len(tokens)} tokens, fewer "
                    f"than one sequence of {seq_len + 1}; the mixture gives it weight {mixture[domain]:.4g}"
                )
            self.tokens[domain] = tokens
            self.windows[domain] = count
        self.rng = np.random.default_rng(seed)
        self.epoch = {d: 0 for d in self.domains}
        self.cursor = {d: 0 for d in self.domains}
        self._orders: dict[str, np.ndarray] = {}

    def _order(self, domain: str) -> np.ndarray:
        order = self._orders.get(domain)
        if order is None:
            rng = np.random.default_rng(_domain_seed(self.seed, domain, self.epoch[domain]))
            order = rng.permutation(self.windows[domain])
            self._orders[domain] = order
        return order

    def _take(self, domain: str, count: int) -> np.ndarray:
        """The next `count` window ids of a domain, crossing into new epochs as needed."""
        out = []
        while count:
            order = self._order(domain)
            start = self.cursor[domain]
            chunk = order[start : start + count]
            out.append(chunk)
            count -= len(chunk)
            self.cursor[domain] = start + len(chunk)
            if self.cursor[domain] >= len(order):
                self.epoch[domain] += 1
                self.cursor[domain] = 0
                self._orders.pop(domain, None)
        return np.concatenate(out)

    def next_batch(self, batch: int) -> np.ndarray:
        """An int64 array of shape (batch, seq_len + 1): inputs are [:, :-1], targets [:, 1:]."""
        picks = self.rng.choice(len(self.domains), size=batch, p=self.probs)
        out = np.empty((batch, self.seq_len + 1), dtype=np.int64)
        for i in np.unique(picks):
            rows = np.flatnonzero(picks == i)
            domain = self.domains[i]
            starts = self._take(domain, len(rows)) * self.seq_len
            idx = starts[:, None] + np.arange(self.seq_len + 1)[None, :]
            out[rows] = self.tokens[domain][idx]
        return out

    def state_dict(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "epoch": dict(self.epoch),
            "cursor": dict(self.cursor),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.epoch = {d: int(state["epoch"][d]) for d in self.domains}
        self.cursor = {d: int(state["cursor"][d]) for d in self.domains}
        self._orders.clear()
