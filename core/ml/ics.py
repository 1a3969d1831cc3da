"""Santurkar et al.'s gradient-based measure of internal covariate shift (2018, Sec. 2.2, Fig. 3).

For hidden weight layer i of a model at a telemetry step, on a fixed batch (the landscape probe's: the first
`batch_size` training examples, BN in training mode, no dropout):
- G  = ∇_{W_i} L at the current parameters;
- G′ = ∇_{W_i} L after every parameter before W_i (the preceding layers' weights, biases, BN γ and β) took
  one plain gradient step, w ← w − η·∇_w L with the model's learning rate η, while W_i and the layers after
  it stay where they are: the gradient of layer i once its inputs have shifted as training shifts them.
bnlab records ‖G − G′‖₂ and cos(G, G′) per layer (Frobenius norm and cosine of the flattened matrices). For
the first layer nothing precedes it: G′ = G, the change is 0 and the cosine 1.

As the landscape probe (`core.ml.landscape`): every model of a stack at once, one forward and backward pass
per layer, parameters and BN running averages put back bit for bit, one read at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

LossAndGradient = Callable[[], tuple[Tensor, list[Tensor]]]


def stacked_ics(
    parameters: Sequence[Tensor],
    buffers: Sequence[Tensor],
    loss_and_gradient: LossAndGradient,
    learning_rates: Sequence[float],
    hidden_weights: Sequence[int],
) -> list[list[tuple[float, float]]]:
    """Each model's (‖G − G′‖₂, cos(G, G′)) per hidden weight layer, `hidden_weights` being their positions
    in `parameters` (the stacks [M, ...] in the net's order); `loss_and_gradient()` as the landscape's."""
    parameters, buffers = list(parameters), list(buffers)
    saved_parameters = [parameter.detach().clone() for parameter in parameters]
    saved_buffers = [buffer.clone() for buffer in buffers]
    rates = torch.tensor(learning_rates, dtype=parameters[0].dtype, device=parameters[0].device)
    changes: list[Tensor] = []
    cosines: list[Tensor] = []
    try:
        _, gradient = loss_and_gradient()
        for position in hidden_weights:
            before = gradient[position].flatten(1)
            if position == 0:  # nothing precedes the first layer
                changes.append(torch.zeros_like(rates))
                cosines.append(torch.ones_like(rates))
                continue
            preceding = parameters[:position]
            with torch.no_grad():
                torch._foreach_copy_(parameters, saved_parameters)
                if buffers:
                    torch._foreach_copy_(buffers, saved_buffers)
                steps = [-rates.view((-1,) + (1,) * (p.dim() - 1)) for p in preceding]
                torch._foreach_addcmul_(preceding, gradient[:position], steps)
            _, shifted = loss_and_gradient()
            after = shifted[position].flatten(1)
            changes.append((before - after).norm(dim=1))
            cosines.append(torch.nn.functional.cosine_similarity(before, after, dim=1, eps=1e-30))
    finally:
        with torch.no_grad():
            torch._foreach_copy_(parameters, saved_parameters)
            if buffers:
                torch._foreach_copy_(buffers, saved_buffers)
    table = torch.stack([torch.stack(changes, dim=1), torch.stack(cosines, dim=1)], dim=2)
    return [[(change, cosine) for change, cosine in rows] for rows in table.double().tolist()]
