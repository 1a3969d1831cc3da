"""bnlab's own batch normalization: the paper's Algorithm 1 and its inference rule, written out.

Ioffe & Szegedy (2015), Algorithm 1, per channel over a mini-batch B of m values:
    μ_B = 1/m Σ x_i,   σ²_B = 1/m Σ (x_i − μ_B)²   (the biased batch variance),
    x̂_i = (x_i − μ_B) / √(σ²_B + ε),   y_i = γ x̂_i + β.
Inference (Algorithm 2, step 10) replaces the batch statistics by population ones: E[x] and
Var[x] = m/(m−1) · E_B[σ²_B] (the unbiased variance), both kept as running averages during training.

The running averages follow torch's momentum convention, `running = (1 − momentum)·running + momentum·batch`,
and the parameter and buffer names match `nn.BatchNorm1d/2d`, so a model's state dict is the same whichever
implementation the spec chooses. Gradients come from autograd through these operations, which is exactly the
backward pass the paper derives.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _AlgorithmOneBatchNorm(nn.Module):
    """Normalizes each channel (dimension 1) over every other dimension of the input."""

    accepted_dimensions: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))  # γ
        self.bias = nn.Parameter(torch.zeros(num_features))  # β
        self.running_mean: Tensor
        self.running_var: Tensor
        self.num_batches_tracked: Tensor
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.dim() not in self.accepted_dimensions:
            raise ValueError(
                f"{type(self).__name__} expects a {' or '.join(map(str, self.accepted_dimensions))}-d input, "
                f"got shape {tuple(inputs.shape)}"
            )
        reduced = [0, *range(2, inputs.dim())]
        per_channel = (1, self.num_features) + (1,) * (inputs.dim() - 2)
        if self.training:
            values_per_channel = inputs.numel() // self.num_features
            if values_per_channel < 2:
                raise ValueError("batch normalization in training needs more than one value per channel")
            mean = inputs.mean(dim=reduced)
            centered = inputs - mean.view(per_channel)
            variance = (centered * centered).mean(dim=reduced)  # biased: divides by m
            with torch.no_grad():
                unbiased = variance * (values_per_channel / (values_per_channel - 1))
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            centered = inputs - self.running_mean.view(per_channel)
            variance = self.running_var
        normalized = centered / torch.sqrt(variance.view(per_channel) + self.eps)
        return normalized * self.weight.view(per_channel) + self.bias.view(per_channel)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class PaperBatchNorm1d(_AlgorithmOneBatchNorm):
    """Algorithm 1 for (batch, features) or (batch, channels, length) inputs; a drop-in for nn.BatchNorm1d."""

    accepted_dimensions = (2, 3)


class PaperBatchNorm2d(_AlgorithmOneBatchNorm):
    """Algorithm 1 per channel over batch and both spatial axes (the paper's convolutional variant, §3.2)."""

    accepted_dimensions = (4,)
