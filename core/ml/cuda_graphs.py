"""A stack's training step captured as one CUDA graph and replayed at every step (CUDA only).

A small net's step is some hundred kernels of microseconds each; launched one by one from Python they
leave the GPU idle most of the time. Captured once, the whole step is one launch. Captured: the gather of
the batch, the forward and backward pass, the update and the correct-prediction counts of an `MLPStack`
with sgd or momentum and no dropout (adam's bias corrections and dropout's generator would need
device-side counters; those steps run eagerly). The graph reads its batch's indices from a fixed buffer,
so a step copies them in and replays. A model that ends changes rates in place (the graph reads them on);
anything that replaces the stack's tensors (a compaction) needs a new graph, captured at the next step.

Capture needs warm-up steps, which would train: the stack's state is copied before them and put back, so
a run's numbers are those of eager steps (to rounding: the same kernels run). When capture fails, the
stack steps eagerly from then on, and the failure is logged once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)
WARMUP_STEPS = 2
_failure_logged = False

Step = Callable[[Tensor], tuple[Tensor, Tensor]]


class GraphedStep:
    """`step(indices)` replayed from a CUDA graph captured on the first call's shapes."""

    def __init__(self, step: Step, state: Callable[[], list[Tensor]]) -> None:
        self.step = step
        self.state = state  # every tensor a step changes in place (parameters, buffers, optimizer state)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False

    def __call__(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        if self.failed:
            return self.step(indices)
        if self.graph is None:
            saved = [tensor.clone() for tensor in self.state()]
            try:
                self._capture(indices)
            except RuntimeError as error:  # capture is best effort: eager steps compute the same
                self.failed = True
                _log_failure_once(error)
            torch._foreach_copy_(self.state(), saved)  # the warm-up steps never happened
            if self.failed:
                return self.step(indices)
        assert self.graph is not None
        self.static_indices.copy_(indices)
        self.graph.replay()
        return self.losses.clone(), self.correct.clone()

    def _capture(self, indices: Tensor) -> None:
        self.static_indices = indices.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.step(self.static_indices)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.losses, self.correct = self.step(self.static_indices)
        self.graph = graph


def _log_failure_once(error: RuntimeError) -> None:
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        logger.warning("CUDA graph capture failed, training steps run eagerly: %s", error)
