"""The counter-based batch sampler: epochs without repeats, reproducible from the seed alone, the same
batches for a model alone or in a stack of any size, resumable mid-epoch."""

from __future__ import annotations

import torch

from core.ml.sampling import BatchSampler, StackSampler, epoch_orders


def _batches(sampler: BatchSampler, count: int) -> list[list[int]]:
    return [sampler.next().tolist() for _ in range(count)]


def test_each_epoch_deals_every_example_exactly_once() -> None:
    sampler = BatchSampler(num_examples=30, batch_size=7, seed=0, device="cpu")
    dealt = [index for batch in _batches(sampler, 30) for index in batch]  # 210 indices = 7 epochs
    assert all(len(batch) == 7 for batch in _batches(sampler, 3))
    for epoch in range(7):
        assert sorted(dealt[epoch * 30 : (epoch + 1) * 30]) == list(range(30))
    assert dealt[:30] != dealt[30:60]  # a new permutation per epoch


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    first = _batches(BatchSampler(100, 10, seed=5, device="cpu"), 25)
    torch.manual_seed(123)  # the global generator has no say
    assert _batches(BatchSampler(100, 10, seed=5, device="cpu"), 25) == first
    assert _batches(BatchSampler(100, 10, seed=6, device="cpu"), 25) != first


def test_the_orders_are_pinned_so_that_batches_stay_what_they_are_across_releases() -> None:
    orders = epoch_orders(torch.tensor([0, 1]), torch.tensor([0, 7]), 10)
    assert orders.tolist() == [
        [[5, 7, 0, 8, 2, 3, 1, 6, 9, 4], [4, 3, 9, 6, 1, 2, 8, 7, 0, 5]],
        [[1, 9, 7, 3, 8, 4, 6, 2, 0, 5], [9, 4, 3, 2, 6, 7, 0, 8, 1, 5]],
    ]


def test_orders_look_random() -> None:
    """Over many seeds, each example lands in each position about equally often (a biased hash would not)."""
    orders = epoch_orders(torch.arange(4000), torch.tensor([3]), 8)[:, 0]  # [4000, 8]
    counts = torch.stack([(orders == example).sum(dim=0) for example in range(8)])  # [example, position]
    assert counts.min() > 400 and counts.max() < 600  # 500 expected


def test_sampling_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _batches(BatchSampler(50, 8, seed=1, device="cpu"), 20)
    assert torch.equal(torch.rand(3), expected)


def test_batch_larger_than_the_dataset() -> None:
    sampler = BatchSampler(num_examples=5, batch_size=12, seed=0, device="cpu")
    dealt = [index for batch in _batches(sampler, 5) for index in batch]  # 60 indices = 12 epochs
    assert all(sorted(dealt[epoch * 5 : (epoch + 1) * 5]) == list(range(5)) for epoch in range(12))


def test_a_model_deals_the_same_batches_alone_and_in_a_stack_of_any_size() -> None:
    seeds = [3, 0, 17, 3, 99, 1 << 30]
    stack = StackSampler(97, 13, seeds, "cpu").next_batches(40)  # [40, 6, 13]: 5.4 epochs
    assert stack.shape == (40, len(seeds), 13)
    for slot, seed in enumerate(seeds):
        alone = BatchSampler(97, 13, seed, "cpu").next_batches(40)
        assert torch.equal(stack[:, slot], alone)
    assert not torch.equal(stack[:, 0], stack[:, 1])


def test_a_stack_that_drops_models_deals_the_others_on_unchanged() -> None:
    uninterrupted = StackSampler(50, 8, [1, 2, 3, 4], "cpu").next_batches(30)
    sampler = StackSampler(50, 8, [1, 2, 3, 4], "cpu")
    head = sampler.next_batches(11)
    sampler.keep([3, 1])
    tail = sampler.next_batches(19)
    assert torch.equal(torch.cat([head[:, [3, 1]], tail]), uninterrupted[:, [3, 1]])


def test_state_dict_resumes_the_same_sequence_mid_epoch() -> None:
    uninterrupted = BatchSampler(40, 6, seed=2, device="cpu")
    expected = _batches(uninterrupted, 20)

    interrupted = BatchSampler(40, 6, seed=2, device="cpu")
    head = _batches(interrupted, 9)  # stops inside the second epoch
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "position": 14}
    resumed = BatchSampler(40, 6, seed=2, device="cpu")
    resumed.load_state_dict(state)
    assert head + _batches(resumed, 11) == expected


def test_a_stretch_of_batches_is_what_as_many_single_batches_would_be() -> None:
    one_by_one = BatchSampler(40, 6, seed=3, device="cpu")
    expected = _batches(one_by_one, 50)  # 300 indices: 7.5 epochs, batches across epoch boundaries

    stretches = BatchSampler(40, 6, seed=3, device="cpu")
    dealt: list[list[int]] = []
    for count in (1, 3, 13, 7, 26):  # 50 batches in stretches that start and end mid-epoch
        stretch = stretches.next_batches(count)
        assert stretch.shape == (count, 6)
        dealt.extend(stretch.tolist())
    assert dealt == expected
    # and the two ways mix: a single batch after the stretches goes on from where they stopped
    assert stretches.next().tolist() == one_by_one.next().tolist()


def test_drawing_runs_on_any_device_without_reading_back() -> None:
    """On the meta device (a stand-in for an accelerator) any read of a value would raise."""
    batches = StackSampler(1437, 60, list(range(64)), "meta").next_batches(50)
    assert batches.shape == (50, 64, 60) and batches.device.type == "meta"
