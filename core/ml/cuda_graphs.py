"""A stack's training step captured as one CUDA graph and replayed at every step (CUDA only).

A small net's step is some hundred kernels of microseconds each; launched one by one from Python they
leave the GPU idle most of the time. Captured once, the whole step is one launch. Captured: the forward
and backward pass and the update of an `MLPStack` with sgd or momentum and no dropout (adam's bias
corrections and dropout's generator would need device-side counters; those steps run eagerly). The
graph reads its inputs from fixed buffers, so a step copies its batch in and replays. Anything that
replaces the stack's tensors (a model deactivated or compacted away, a checkpoint loaded) drops the graph;
the next step captures a new one.

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

Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class GraphedStep:
    """`step(inputs, labels)` replayed from a CUDA graph captured on the first call's shapes."""

    def __init__(self, step: Step, state: Callable[[], list[Tensor]]) -> None:
        self.step = step
        self.state = state  # every tensor a step changes in place (parameters, buffers, optimizer state)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False

    def __call__(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        if self.failed:
            return self.step(inputs, labels)
        if self.graph is None:
            try:
                self._capture(inputs, labels)
            except RuntimeError as error:  # capture is best effort: eager steps compute the same
                self.failed = True
                _log_failure_once(error)
                return self.step(inputs, labels)
        self.static_inputs.copy_(inputs)
        self.static_labels.copy_(labels)
        assert self.graph is not None
        self.graph.replay()
        return self.losses.clone(), self.logits.clone()

    def _capture(self, inputs: Tensor, labels: Tensor) -> None:
        self.static_inputs, self.static_labels = inputs.clone(), labels.clone()
        saved = [tensor.clone() for tensor in self.state()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.step(self.static_inputs, self.static_labels)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.losses, self.logits = self.step(self.static_inputs, self.static_labels)
        torch._foreach_copy_(self.state(), saved)  # the warm-up steps never happened
        self.graph = graph


def _log_failure_once(error: RuntimeError) -> None:
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        logger.warning("CUDA graph capture failed, training steps run eagerly: %s", error)
