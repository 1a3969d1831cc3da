"""Mini-batch sampling by index, reproducible from a seed alone.

`BatchSampler` deals training examples in epochs: a random permutation of all examples, cut into
consecutive batches. A batch that would run past the end of a permutation takes its remaining examples
from the start of the next one, so every example is seen once per epoch and any batch size works (even
one larger than the dataset).

Randomness comes from exactly one source: the sampler's own `torch.Generator` on the CPU, seeded with the
seed it is given, used for nothing but `torch.randperm(num_examples)` — one call per epoch. The global
generators (torch's, numpy's, Python's) are never touched, so a trainer that holds several samplers (one
per model of a fused group) reproduces each separate run's batches exactly. The permutation is drawn on
the CPU and moved to the device once per epoch, so the batches are the same on every device and a step
slices a tensor that is already there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class BatchSampler:
    """Yields LongTensors of `batch_size` example indices on `device`, epoch after epoch."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, device: torch.device | str) -> None:
        if num_examples < 1 or batch_size < 1:
            raise ValueError("a sampler needs at least one example and a positive batch size")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long, device=self.device)
        self._position = 0

    def next(self) -> Tensor:
        """The indices of the next batch."""
        return self._take(self.batch_size)

    def next_batches(self, count: int) -> Tensor:
        """The indices of the next `count` batches, [count, batch_size]: what `count` calls of `next` would
        return, in one slice (a fused group of hundreds of models fetches a stretch of steps this way)."""
        return self._take(count * self.batch_size).view(count, self.batch_size)

    def _take(self, size: int) -> Tensor:
        """The next `size` indices of the stream: the epochs' permutations laid end to end."""
        end = self._position + size
        if end > self._order.numel():
            self._deal_more(size)
            end = self._position + size
        indices = self._order[self._position : end]
        self._position = end
        return indices

    def _deal_more(self, needed: int) -> None:
        """Keep the unused tail of the current order and append fresh epochs until `needed` indices fit."""
        parts = [self._order[self._position :].cpu()]
        available = parts[0].numel()
        while available < needed:
            parts.append(torch.randperm(self.num_examples, generator=self._generator))
            available += self.num_examples
        self._order = torch.cat(parts).to(self.device)
        self._position = 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue with the same batches: generator state and the current order."""
        return {
            "generator": self._generator.get_state(),
            "order": self._order.cpu(),
            "position": self._position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])
        self._order = state["order"].to(self.device)
        self._position = int(state["position"])
