"""bnlab's own BN (the paper's Algorithm 1) computes what torch's BatchNorm1d/2d compute, to 1e-5."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from core.ml.batchnorm import PaperBatchNorm1d, PaperBatchNorm2d

TOLERANCE = 1e-5
CASES = [
    # (ours, torch's, input shape): features, sequences and images
    (PaperBatchNorm1d, nn.BatchNorm1d, (16, 5)),
    (PaperBatchNorm1d, nn.BatchNorm1d, (8, 5, 7)),
    (PaperBatchNorm2d, nn.BatchNorm2d, (6, 5, 4, 3)),
]


def _pair(ours: type[nn.Module], theirs: type[nn.Module], momentum: float, eps: float) -> tuple[Any, Any]:
    """Both layers, with the same non-trivial γ and β (typed Any: they share attributes, not a type)."""
    paper: Any = ours(5, eps=eps, momentum=momentum)
    reference: Any = theirs(5, eps=eps, momentum=momentum)
    with torch.no_grad():
        for module in (paper, reference):
            module.weight.copy_(torch.linspace(0.5, 2.0, 5))
            module.bias.copy_(torch.linspace(-1.0, 1.0, 5))
    return paper, reference


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize(("ours", "theirs", "shape"), CASES)
@pytest.mark.parametrize(("momentum", "eps"), [(0.1, 1e-5), (0.5, 1e-3)])
def test_training_mode_matches_torch_forward_backward_and_running_statistics(
    ours: type[nn.Module], theirs: type[nn.Module], shape: tuple[int, ...], momentum: float, eps: float
) -> None:
    paper, reference = _pair(ours, theirs, momentum, eps)
    generator = torch.Generator().manual_seed(0)
    for batch in range(3):  # several batches: the running averages compound
        inputs = (torch.randn(shape, generator=generator) * 3 + batch).requires_grad_()
        reference_inputs = inputs.detach().clone().requires_grad_()
        upstream = torch.randn(shape, generator=generator)
        outputs, reference_outputs = paper(inputs), reference(reference_inputs)
        _close(outputs, reference_outputs)
        (outputs * upstream).sum().backward()
        (reference_outputs * upstream).sum().backward()
        assert inputs.grad is not None and reference_inputs.grad is not None
        _close(inputs.grad, reference_inputs.grad)
        _close(paper.weight.grad, reference.weight.grad)
        _close(paper.bias.grad, reference.bias.grad)
        _close(paper.running_mean, reference.running_mean)
        _close(paper.running_var, reference.running_var)
        paper.zero_grad()
        reference.zero_grad()
    assert int(paper.num_batches_tracked) == int(reference.num_batches_tracked) == 3


@pytest.mark.parametrize(("ours", "theirs", "shape"), CASES)
def test_inference_mode_uses_population_statistics_like_torch(
    ours: type[nn.Module], theirs: type[nn.Module], shape: tuple[int, ...]
) -> None:
    paper, reference = _pair(ours, theirs, momentum=0.3, eps=1e-5)
    generator = torch.Generator().manual_seed(1)
    for _ in range(4):  # train both, so the running statistics are far from their initial 0 and 1
        batch = torch.randn(shape, generator=generator) * 2 + 5
        paper(batch)
        reference(batch)
    paper.eval()
    reference.eval()
    inputs = torch.randn(shape, generator=generator).requires_grad_()
    reference_inputs = inputs.detach().clone().requires_grad_()
    outputs, reference_outputs = paper(inputs), reference(reference_inputs)
    _close(outputs, reference_outputs)
    outputs.sum().backward()
    reference_outputs.sum().backward()
    assert inputs.grad is not None and reference_inputs.grad is not None
    _close(inputs.grad, reference_inputs.grad)
    _close(paper.weight.grad, reference.weight.grad)
    # Inference changes nothing: normalizing one example at a time gives the same answer.
    _close(paper(inputs[:1]), outputs[:1])


def test_state_dicts_are_interchangeable_with_torch() -> None:
    paper, reference = _pair(PaperBatchNorm2d, nn.BatchNorm2d, momentum=0.1, eps=1e-5)
    assert paper.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(paper.state_dict())


def test_training_needs_more_than_one_value_per_channel() -> None:
    with pytest.raises(ValueError, match="more than one value"):
        PaperBatchNorm1d(5)(torch.randn(1, 5))


def test_wrong_input_rank_is_refused() -> None:
    with pytest.raises(ValueError, match="4-d input"):
        PaperBatchNorm2d(5)(torch.randn(4, 5))
