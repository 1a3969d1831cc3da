"""Mini-batch sampling by index: a counter-based sampler, (seed, epoch, position) → example index.

Each model deals its training examples in epochs: a permutation of all N examples, cut into consecutive
batches; a batch that runs past the end of an epoch takes its remaining examples from the start of the
next one, so every example is seen once per epoch and any batch size works (even one larger than N).

The permutation of epoch e of a model seeded s is the argsort of N hashed keys, key(s, e, i) for
i = 0 … N−1, where `key` is splitmix64 written in int64 tensor operations (wrapping multiplication, xor,
logical shifts). No generator is involved, so:
- a model's batches depend on (seed, epoch, position) alone: the same whether it trains alone or in a
  stack of any size, on the CPU or on a GPU (integer operations round nowhere; the sort is stable, so even
  a key collision orders the same way everywhere);
- the permutations of every model of a stack, for every epoch a stretch of steps touches, come from one
  batched hash and one batched sort, on the training device: nothing is drawn on the host or uploaded;
- the sampler's state is two integers (epoch and position within it) and resuming is exact;
- torch's global generators (and numpy's, and Python's) are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """A 64-bit constant as the int64 that has its bits."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


GOLDEN_GAMMA = _signed(0x9E3779B97F4A7C15)  # splitmix64's increment
MIX_MULTIPLIER_1 = _signed(0xBF58476D1CE4E5B9)
MIX_MULTIPLIER_2 = _signed(0x94D049BB133111EB)
EPOCH_MULTIPLIER = _signed(0xD1B54A32D192ED03)


def shift_right(values: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 values (torch's `>>` is arithmetic: it copies the sign bit)."""
    return (values >> bits) & ((1 << (64 - bits)) - 1)


def mix_bits(values: Tensor) -> Tensor:
    """splitmix64's finalizer: a bijection of 64-bit integers that scrambles every input bit into all."""
    values = values ^ shift_right(values, 30)
    values = values * MIX_MULTIPLIER_1
    values = values ^ shift_right(values, 27)
    values = values * MIX_MULTIPLIER_2
    return values ^ shift_right(values, 31)


def epoch_orders(seeds: Tensor, epochs: Tensor, num_examples: int) -> Tensor:
    """The example order of each (model, epoch): [models, epochs, num_examples] from seeds [models] and
    epochs [epochs], both int64 on the device the orders are wanted on."""
    device = seeds.device
    per_model = mix_bits(seeds.view(-1, 1) * GOLDEN_GAMMA + GOLDEN_GAMMA)  # [models, 1]
    per_epoch = mix_bits(per_model ^ (epochs.view(1, -1) * EPOCH_MULTIPLIER))  # [models, epochs]
    positions = torch.arange(num_examples, dtype=torch.long, device=device) * GOLDEN_GAMMA
    keys = mix_bits(per_epoch.unsqueeze(-1) + positions)  # [models, epochs, examples]
    return torch.sort(keys, dim=-1, stable=True).indices


class StackSampler:
    """Batches of example indices for a stack of models, [steps, models, batch_size], on `device`.

    Every model of a stack has taken the same number of steps, so all deal from the same position of
    their own streams; only their seeds differ.
    """

    def __init__(
        self, num_examples: int, batch_size: int, seeds: Sequence[int], device: torch.device | str
    ) -> None:
        if num_examples < 1 or batch_size < 1 or not seeds:
            raise ValueError("a sampler needs at least one example, a positive batch size and one seed")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.seeds = torch.tensor(list(seeds), dtype=torch.long, device=self.device)
        self.dealt = 0  # indices dealt per model since epoch 0 began
        self._orders: dict[int, Tensor] = {}  # epoch → [models, num_examples]

    @property
    def epoch(self) -> int:
        return self.dealt // self.num_examples

    @property
    def position(self) -> int:
        """Examples of the current epoch already dealt."""
        return self.dealt % self.num_examples

    def next_batches(self, steps: int) -> Tensor:
        """The next `steps` batches of every model: [steps, models, batch_size]."""
        size = steps * self.batch_size
        first, last = self.dealt // self.num_examples, (self.dealt + size - 1) // self.num_examples
        stream = self._stream(first, last)  # [models, (last - first + 1) · N]
        start = self.dealt - first * self.num_examples
        self.dealt += size
        batches = stream[:, start : start + size].view(-1, steps, self.batch_size)
        return batches.transpose(0, 1).contiguous()

    def _stream(self, first: int, last: int) -> Tensor:
        """Epochs first … last of every model laid end to end; the missing ones hashed and sorted at once."""
        wanted = range(first, last + 1)
        missing = [epoch for epoch in wanted if epoch not in self._orders]  # the newest: a range
        if missing:
            # Made on the device (no upload from the host, which might wait for the device's queue).
            epochs = torch.arange(missing[0], missing[-1] + 1, dtype=torch.long, device=self.device)
            orders = epoch_orders(self.seeds, epochs, self.num_examples)
            self._orders.update(zip(missing, orders.unbind(1), strict=True))
        for stale in [epoch for epoch in self._orders if epoch < first]:  # streams only move on
            del self._orders[stale]
        parts = [self._orders[epoch] for epoch in wanted]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the models at `slots`, in that order."""
        index = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        self.seeds = self.seeds.index_select(0, index)
        self._orders = {epoch: order.index_select(0, index) for epoch, order in self._orders.items()}

    def state_dict(self) -> dict[str, Any]:
        """Where the stack's streams stand (the seeds are the specs')."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dealt = int(state["epoch"]) * self.num_examples + int(state["position"])
        self._orders.clear()


class BatchSampler:
    """One model's batches, [batch_size] at a time: a stack of one (for loops written for one net)."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, device: torch.device | str) -> None:
        self._stack = StackSampler(num_examples, batch_size, [seed], device)

    def next(self) -> Tensor:
        """The indices of the next batch."""
        return self._stack.next_batches(1)[0, 0]

    def next_batches(self, count: int) -> Tensor:
        """The next `count` batches, [count, batch_size]: what `count` calls of `next` would return."""
        return self._stack.next_batches(count)[:, 0]

    def state_dict(self) -> dict[str, Any]:
        return self._stack.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._stack.load_state_dict(state)
