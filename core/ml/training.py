"""The training loop: `run(spec, callbacks, checkpoint, settings) -> Result`.

It builds the spec's net, loads its dataset onto the device, and trains, reporting through `Callbacks`; it
knows nothing of storage, queues or HTTP.

The loop runs in stretches of steps between *sync points*, the only places where the host waits for the
device. A stretch ends at the next evaluation, telemetry, landscape or checkpoint step, or after about
SYNC_SECONDS of training, whichever comes first. Within a stretch nothing is read back: per-step losses
and logits stay on the device. At each sync point the loop
- finds the first non-finite loss of the stretch, if any: the run ends as `diverged` at that step (a
  result, not an exception);
- reduces the stretch's logits to per-step correct-prediction counts (train accuracy costs no per-step work);
- evaluates, probes (telemetry, loss landscape), checkpoints when due, reports progress, and polls
  `should_stop`, so a stop request is honoured within about SYNC_SECONDS.

Steps are counted in optimizer updates: "step k" is the state after k updates, and the loss of step k is
the loss of the batch that update k was computed from. train_loss and train_accuracy at an evaluation are
the means over the steps since the previous evaluation, val_loss and val_accuracy are computed on the
whole held-out split under `model.eval()` and `torch.no_grad()`.

Determinism: parameters come from `spec.seed` (see `core.ml.nets`), batches from the sampler's own
generator, dropout from torch's global generator seeded by the build. None of it depends on where the sync
points fall, so on the CPU with the same thread count a spec always yields the same metrics, with or
without telemetry or landscape probes, interrupted and resumed from a checkpoint or not.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor

from core.ml.checkpoints import RunState, load_checkpoint, save_checkpoint
from core.ml.data import Dataset, load_dataset
from core.ml.landscape import LandscapeProbe
from core.ml.nets import Net, build_model
from core.ml.sampling import BatchSampler
from core.ml.telemetry import layer_telemetry, probe_batch
from core.results import Callbacks, MetricPoint, Progress, Result, RunOutcome
from core.settings import Settings, get_settings
from core.spec import JobSpec

SYNC_SECONDS = 0.25  # training time between sync points: bounds the answer to a stop request
FIRST_STRETCH_STEPS = 8  # before the speed is known
MAX_KEPT_LOGITS = 1 << 24  # logit values kept on the device between sync points (64 MiB of float32)
EVAL_BATCH_SIZE = 2048  # held-out examples per forward pass: bounds an evaluation's memory, not its result
MOMENTUM = 0.9  # the `momentum` optimizer's


def run(
    spec: JobSpec,
    callbacks: Callbacks | None = None,
    checkpoint: bytes | None = None,
    settings: Settings | None = None,
) -> Result:
    """Train `spec` to the end, to a stop request or to divergence; resume from `checkpoint` when given.

    Raises ValueError for a device this machine does not have or a checkpoint of another spec.
    """
    settings = settings if settings is not None else get_settings()
    torch.set_num_threads(settings.torch_threads)
    device = resolve_device(spec.device)
    dataset = load_dataset(spec.dataset, spec.seed, device, settings)
    model = build_model(spec, dataset.input_shape, dataset.num_classes).to(device)
    optimizer = build_optimizer(spec, model)
    sampler = BatchSampler(len(dataset.train_y), spec.batch_size, spec.seed, device)
    state = RunState()
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, spec, model, optimizer, sampler, device)
    training = _Training(spec, callbacks or Callbacks(), dataset, model, optimizer, sampler, state, device)
    return training.run()


def resolve_device(requested: str) -> torch.device:
    """`auto`: the current CUDA device if there is one, else the CPU; CUDA where there is none: ValueError."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was requested, but CUDA is not available on this machine")
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {requested!r} was requested, but this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def build_optimizer(spec: JobSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """sgd: plain SGD; momentum: SGD with momentum 0.9; adam: Adam with torch's defaults besides the rate."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    momentum = MOMENTUM if spec.optimizer == "momentum" else 0.0
    return torch.optim.SGD(model.parameters(), lr=spec.learning_rate, momentum=momentum)


class _Training:
    """One run's loop and the bookkeeping around it (used once, by `run`)."""

    def __init__(
        self,
        spec: JobSpec,
        callbacks: Callbacks,
        dataset: Dataset,
        model: Net,
        optimizer: torch.optim.Optimizer,
        sampler: BatchSampler,
        state: RunState,
        device: torch.device,
    ) -> None:
        self.spec = spec
        self.callbacks = callbacks
        self.dataset = dataset
        self.model = model
        self.optimizer = optimizer
        self.sampler = sampler
        self.state = state
        self.device = device
        self.probe_inputs = probe_batch(dataset.train_x)
        self.landscape_probe = (
            LandscapeProbe.for_run(model, dataset.train_x, dataset.train_y, spec)
            if spec.landscape_every
            else None
        )
        self.max_stretch_steps = max(1, MAX_KEPT_LOGITS // (spec.batch_size * dataset.num_classes))
        self.started_at = time.perf_counter()
        self.first_step = state.step
        self.seconds_before_resume = state.summary.elapsed_seconds

    def run(self) -> Result:
        spec, state, callbacks = self.spec, self.state, self.callbacks
        callbacks.on_progress(Progress(state.step, spec.steps))
        self.model.train()
        stretch_steps = FIRST_STRETCH_STEPS
        while state.step < spec.steps:
            if callbacks.should_stop():
                return self._result("cancelled")
            steps = min(stretch_steps, self._steps_to_next_event())
            stretch_started = time.perf_counter()
            losses, correct = self._train(steps)
            diverged_after = _first_non_finite(losses)  # the sync point: waits for the device
            if diverged_after is not None:
                state.step += diverged_after + 1
                return self._result("diverged", diverged_at_step=state.step)
            stretch_seconds = time.perf_counter() - stretch_started
            state.step += steps
            state.window_losses.append(losses)
            state.window_correct.append(correct)
            self._report_due_events()
            callbacks.on_progress(Progress(state.step, spec.steps, self._steps_per_second()))
            stretch_steps = self._next_stretch_steps(steps, stretch_seconds)
        return self._result("succeeded")

    def _train(self, steps: int) -> tuple[Tensor, Tensor]:
        """`steps` optimizer updates; returns their losses and correct-prediction counts, on the device."""
        model, optimizer, sampler = self.model, self.optimizer, self.sampler
        train_x, train_y = self.dataset.train_x, self.dataset.train_y
        losses: list[Tensor] = []
        logits_seen: list[Tensor] = []
        labels_seen: list[Tensor] = []
        for _ in range(steps):
            indices = sampler.next()
            labels = train_y[indices]
            logits = model(train_x[indices])
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # Kept, not read: reading a value here would wait for the device at every step.
            losses.append(loss.detach())
            logits_seen.append(logits.detach())
            labels_seen.append(labels)
        with torch.no_grad():
            predictions = torch.stack(logits_seen).argmax(dim=-1)
            correct = (predictions == torch.stack(labels_seen)).sum(dim=-1)
        return torch.stack(losses), correct

    def _steps_to_next_event(self) -> int:
        """Steps until the next step that is evaluated, probed, checkpointed, or the last one."""
        step, spec = self.state.step, self.spec
        intervals = [spec.eval_every, spec.telemetry_every, spec.landscape_every, spec.checkpoint_every]
        following = [step + interval - step % interval for interval in intervals if interval > 0]
        return min([spec.steps, *following]) - step

    def _next_stretch_steps(self, steps: int, seconds: float) -> int:
        """As many steps as the last stretch's speed fits into SYNC_SECONDS (at most double the last)."""
        fitting = int(steps * SYNC_SECONDS / seconds) if seconds > 0 else 2 * steps
        return max(1, min(fitting, 2 * steps, self.max_stretch_steps))

    def _report_due_events(self) -> None:
        step, spec, callbacks = self.state.step, self.spec, self.callbacks
        if step % spec.eval_every == 0 or step == spec.steps:
            callbacks.on_metrics(self._evaluate())
        if spec.telemetry_every and step % spec.telemetry_every == 0:
            callbacks.on_telemetry(layer_telemetry(self.model, self.probe_inputs, step))
        if self.landscape_probe is not None and step % spec.landscape_every == 0:
            callbacks.on_landscape([self.landscape_probe(step)])
        # At the last step there is nothing left to resume.
        if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < spec.steps:
            self.state.summary.elapsed_seconds = self._elapsed_seconds()
            blob = save_checkpoint(spec, self.state, self.model, self.optimizer, self.sampler, self.device)
            callbacks.on_checkpoint(step, blob)

    def _evaluate(self) -> list[MetricPoint]:
        """The four metrics at the current step; updates the running summary."""
        state, summary = self.state, self.state.summary
        window_losses = torch.cat(state.window_losses)
        window_correct = torch.cat(state.window_correct)
        state.window_losses, state.window_correct = [], []
        val_loss, val_accuracy = self._validation_figures()
        figures = torch.stack(
            [
                window_losses.double().mean(),
                window_correct.double().sum() / (window_correct.numel() * self.spec.batch_size),
                val_loss,
                val_accuracy,
            ]
        ).tolist()  # one read from the device for all four
        return summary.record_evaluation(
            state.step, figures, self.spec.target_accuracy, self._elapsed_seconds()
        )

    def _validation_figures(self) -> tuple[Tensor, Tensor]:
        """Mean loss and accuracy on the held-out split, with BN's population statistics and no dropout."""
        val_x, val_y = self.dataset.val_x, self.dataset.val_y
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(val_y), EVAL_BATCH_SIZE):
                logits = self.model(val_x[start : start + EVAL_BATCH_SIZE])
                labels = val_y[start : start + EVAL_BATCH_SIZE]
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
                correct += (logits.argmax(dim=-1) == labels).sum()
        self.model.train()
        return loss_sum / len(val_y), correct.double() / len(val_y)

    def _elapsed_seconds(self) -> float:
        """Training wall time of the whole run, the time before a resume included."""
        return self.seconds_before_resume + time.perf_counter() - self.started_at

    def _steps_per_second(self) -> float | None:
        """The speed of this process's part of the run."""
        seconds = time.perf_counter() - self.started_at
        steps = self.state.step - self.first_step
        return steps / seconds if steps > 0 and seconds > 0 else None

    def _result(self, outcome: RunOutcome, diverged_at_step: int | None = None) -> Result:
        summary = self.state.summary
        return Result(
            outcome=outcome,
            steps_completed=self.state.step,
            summary=summary.final(diverged_at_step, self._steps_per_second()),
            device=str(self.device),
        )


def _first_non_finite(losses: Tensor) -> int | None:
    """Index of the first non-finite loss, or None; the one read from the device of a plain sync point."""
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return None
    return int((~finite).nonzero()[0, 0])
