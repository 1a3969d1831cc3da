"""The one trainer: `train_stack(specs, callbacks, ...) -> list[Result]` trains M ≥ 1 jobs as one stack.

Every job trains through here: `core.ml.run` is a stack of one, `core.ml.fused.run_fused` a stack of the
jobs `core.fused_groups` groups. The trainer knows nothing of storage, queues or HTTP; each job reports
through its own `Callbacks`: progress at step 0 and at every sync point, its four metrics at each evaluation,
telemetry, loss-landscape probes, its result the moment it ends (`on_model_result`). `on_sync_point(step)`
follows every job's reports of step 0 and of each sync point: one call for the stack, so that a caller can
store all its jobs' reports together.

The loop runs in stretches of steps between *sync points*, the only places where the host waits for the
device. A stretch ends at the next evaluation, telemetry, landscape or checkpoint step, or after about
SYNC_SECONDS of training, whichever comes first (`core.ml.stretches`). Within a stretch nothing is read
back: batches are drawn on the device (`core.ml.sampling`), per-step losses and logits stay there. At each
sync point the trainer
- reads, in one transfer, which models had a non-finite loss and at which step: each ends `diverged` at
  that step (a result, not an exception);
- evaluates (one forward pass and one cross-entropy over the validation set for the whole stack), probes
  (telemetry, loss landscape), checkpoints when due, reports progress, and polls each job's `should_stop`,
  so a stop request is honoured within about SYNC_SECONDS;
- ends a job with `stop_at_target` at the first evaluation at or above its `target_accuracy` (succeeded).
A model that ends is masked out of the stack at once (its updates are zeroed) and the stacks are compacted
only when a quarter of their rows have ended, or before a checkpoint. The others train on.

Steps are counted in optimizer updates: "step k" is the state after k updates, and the loss of step k is the
loss of the batch that update k was computed from. train_loss and train_accuracy at an evaluation are the
means over the steps since the previous evaluation; val_loss and val_accuracy are computed on the whole
held-out split in eval mode and without gradients (`core.ml.stack_evaluation`).

Determinism: parameters come from each spec's seed (`core.ml.nets`), batches from the counter-based
sampler, dropout from the stack's generator. None of it depends on where the sync points fall, so on the
CPU at the same thread count a spec always yields the same metrics, with or without probes, interrupted and
resumed from a checkpoint or not, alone or in a stack (see `core.ml.fused_model` for what that takes).

Checkpoints are the stack's: one blob every `checkpoint_every` steps through `on_group_checkpoint(step,
blob)` (`core.ml.checkpoints`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from core.ml.checkpoints import StackState, load_stack_checkpoint, save_stack_checkpoint
from core.ml.cuda_graphs import GraphedStep
from core.ml.device_info import resolve_device
from core.ml.sampling import StackSampler
from core.ml.stack_data import StackData
from core.ml.stack_evaluation import landscape_batch, probe_inputs, validation_figures, with_ics
from core.ml.stack_members import StackMember
from core.ml.stacks import Stack, build_stack
from core.ml.stretches import FIRST_STRETCH_STEPS, first_non_finite, next_stretch_steps, steps_to_next_event
from core.results import Callbacks, MetricPoint, Progress, Result, RunOutcome, SyncPointHook
from core.settings import Settings, get_settings
from core.spec import JobSpec

COMPACT_FRACTION = 4  # compact the stacks once 1/COMPACT_FRACTION of their rows have ended

GroupCheckpointHook = Callable[[int, bytes], None]
ModelResultHook = Callable[[int, Result], None]


def train_stack(
    specs: Sequence[JobSpec],
    callbacks: Sequence[Callbacks],
    checkpoint: bytes | None = None,
    settings: Settings | None = None,
    on_group_checkpoint: GroupCheckpointHook | None = None,
    on_model_result: ModelResultHook | None = None,
    on_sync_point: SyncPointHook | None = None,
) -> list[Result]:
    """Train `specs` as one stack; one result per spec, in order. Resume from a stack `checkpoint`.

    Raises ValueError for a device this machine does not have and a checkpoint of another stack.
    """
    settings = settings if settings is not None else get_settings()
    torch.set_num_threads(settings.torch_threads)
    device = resolve_device(specs[0].device)
    trainer = StackTrainer(
        specs, callbacks, device, settings, on_group_checkpoint, on_model_result, on_sync_point
    )
    if checkpoint is not None:
        trainer.restore(checkpoint)
    return trainer.run()


class StackTrainer:
    """The schedule of a stack: stretches, sync points, evaluations, probes, checkpoints, ends."""

    def __init__(
        self,
        specs: Sequence[JobSpec],
        callbacks: Sequence[Callbacks],
        device: torch.device,
        settings: Settings,
        on_group_checkpoint: GroupCheckpointHook | None = None,
        on_model_result: ModelResultHook | None = None,
        on_sync_point: SyncPointHook | None = None,
    ) -> None:
        first = specs[0]
        self.device = device
        self.data = StackData.load(specs, device, settings)
        self.members = [
            StackMember(index, spec, member_callbacks, self.data.dataset_slots[index])
            for index, (spec, member_callbacks) in enumerate(zip(specs, callbacks, strict=True))
        ]
        self.on_group_checkpoint = on_group_checkpoint
        self.on_model_result = on_model_result
        self.on_sync_point = on_sync_point
        self.steps, self.batch_size = first.steps, first.batch_size
        self.intervals = [
            first.eval_every,
            first.telemetry_every,
            first.landscape_every,
            first.checkpoint_every,
        ]
        self.telemetry_mode = first.telemetry_mode  # one per stack (`core.fused_groups`)
        self.step = self.first_step = 0
        self.seconds_before_resume = 0.0
        self.window_losses: list[Tensor] = []  # [steps, rows] per stretch since the last evaluation
        self.window_correct: list[Tensor] = []
        # Models with equal BN eps and momentum sit next to each other: one batch_norm call per run of them.
        self.cuda_graphs = settings.cuda_graphs
        first_rows = sorted(self.members, key=lambda m: (m.spec.bn_eps, m.spec.bn_momentum, m.index))
        self.first_row = {member: row for row, member in enumerate(first_rows)}  # where dropout draws it
        self._build(first_rows)
        self.started_at = time.perf_counter()  # again when `run` starts: training time, not set-up

    def _build(self, rows: list[StackMember]) -> None:
        """The stack, its sampler and its index offsets for `rows` (members in stack order)."""
        self.rows = rows
        self.stack: Stack = build_stack([member.spec for member in rows], self.data, self.device)
        self.stack.draw_dropout_as([self.first_row[member] for member in rows], len(self.members))
        self.sampler = StackSampler(
            self.data.train_size, self.batch_size, [member.spec.seed for member in rows], self.device
        )
        self._index_offsets()
        self._capture_anew()

    def _capture_anew(self) -> None:
        """Step eagerly, or through a CUDA graph captured at the next step (after the stacks changed)."""
        graphs = self.cuda_graphs and self.device.type == "cuda" and self.stack.graphable
        self.step_once = GraphedStep(self._step, self.stack.state_tensors) if graphs else self._step

    def _index_offsets(self) -> None:
        slots = [member.dataset_slot for member in self.rows]
        column = torch.tensor(slots, dtype=torch.long, device=self.device).view(-1, 1)
        self.train_offsets = column * self.data.train_size
        self.val_offsets = column * self.data.val_size

    @property
    def training(self) -> list[StackMember]:
        """The rows whose models have not ended."""
        return [member for member in self.rows if member.result is None]

    # The loop.

    def run(self) -> list[Result]:
        self.started_at = time.perf_counter()
        for member in self.training:
            member.callbacks.on_progress(Progress(self.step, self.steps))
        self._synced()
        stretch_steps = FIRST_STRETCH_STEPS
        while self.step < self.steps and self.training:
            self._end({m: self.step for m in self.training if m.callbacks.should_stop()}, "cancelled")
            if not self.training:
                break
            steps = min(stretch_steps, steps_to_next_event(self.step, self.steps, self.intervals))
            stretch_started = time.perf_counter()
            losses, correct = self.train(steps)
            self.window_losses.append(losses)
            self.window_correct.append(correct)
            diverged = self._first_non_finite(losses)  # the sync point: waits for the device
            self._end({member: self.step + offset + 1 for member, offset in diverged.items()}, "diverged")
            stretch_seconds = time.perf_counter() - stretch_started
            self.step += steps
            if not self.training:
                break
            self._report_due_events()
            progress = Progress(self.step, self.steps, self._steps_per_second())
            for member in self.training:
                member.callbacks.on_progress(progress)
            self._synced()
            if len(self.rows) - len(self.training) >= max(1, len(self.rows) // COMPACT_FRACTION):
                self._compact()
            stretch_steps = next_stretch_steps(steps, stretch_seconds)
        self._end(dict.fromkeys(self.training, self.step), "succeeded")
        return [member.result for member in self.members if member.result is not None]

    def _synced(self) -> None:
        """Every job has reported this sync point: tell the caller once for the stack."""
        if self.on_sync_point is not None:
            self.on_sync_point(self.step)

    def train(self, steps: int) -> tuple[Tensor, Tensor]:
        """`steps` updates of the stack; each row's losses and correct counts ([steps, rows], on the device).

        Makes no host synchronisation: batches are drawn and gathered on the device, figures stay there.
        """
        batches = self.sampler.next_batches(steps) + self.train_offsets  # [steps, rows, batch]
        losses: list[Tensor] = []
        correct: list[Tensor] = []
        for step in range(steps):
            step_losses, step_correct = self.step_once(batches[step])
            # Kept, not read: reading a value here would wait for the device at every step.
            losses.append(step_losses)
            correct.append(step_correct)
        return torch.stack(losses), torch.stack(correct)

    def _step(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        """One update from each row's examples `batch` [rows, batch_size]: its loss and correct count."""
        indices = batch.view(-1)
        inputs = self.data.train_x.index_select(0, indices).view(*batch.shape, -1)
        labels = self.data.train_y.index_select(0, indices)
        losses, logits = self.stack.train_step(inputs, labels)
        with torch.no_grad():
            correct = (logits.argmax(dim=-1) == labels.view(batch.shape)).sum(dim=-1)
        return losses, correct

    def _first_non_finite(self, losses: Tensor) -> dict[StackMember, int]:
        """The training models with a non-finite loss in this stretch, each with its first one's offset."""
        diverged, first = first_non_finite(losses)
        return {
            member: offset
            for member, has_diverged, offset in zip(self.rows, diverged, first, strict=True)
            if has_diverged and member.result is None
        }

    def _end(self, ended: dict[StackMember, int], outcome: RunOutcome) -> None:
        """End each model of `ended` (with the steps it completed): mask it out, then report its result."""
        if not ended:
            return
        for member, steps in ended.items():
            member.result = member.final_result(outcome, steps, self._steps_per_second(), str(self.device))
        self.stack.deactivate([slot for slot, member in enumerate(self.rows) if member in ended])
        if self.on_model_result is not None:
            for member in ended:
                assert member.result is not None
                self.on_model_result(member.index, member.result)

    def _compact(self) -> None:
        """Take the ended models out of the stacks: every stack, state and per-row tensor shrinks."""
        slots = [slot for slot, member in enumerate(self.rows) if member.result is None]
        if len(slots) == len(self.rows):
            return
        self.rows = [self.rows[slot] for slot in slots]
        if not slots:
            return
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        self.window_losses = [window.index_select(1, index) for window in self.window_losses]
        self.window_correct = [window.index_select(1, index) for window in self.window_correct]
        self.stack.keep(slots)
        self.sampler.keep(slots)
        self._index_offsets()
        self._capture_anew()

    # Evaluation, telemetry, landscape probes, checkpoints.

    def _report_due_events(self) -> None:
        step = self.step
        eval_every, telemetry_every, landscape_every, checkpoint_every = self.intervals
        if step % eval_every == 0 or step == self.steps:
            self._evaluate()
        if telemetry_every and step % telemetry_every == 0:
            records = self.stack.telemetry(self._probe_inputs(), step, self.telemetry_mode == "train")
            shifts = self.stack.ics(*self._landscape_batch())
            for member, member_records in zip(self.rows, with_ics(records, shifts), strict=True):
                if member.result is None:
                    member.callbacks.on_telemetry(member_records)
        if landscape_every and step % landscape_every == 0:
            landscape = self.stack.landscape(*self._landscape_batch(), step)
            for member, record in zip(self.rows, landscape, strict=True):
                if member.result is None:
                    member.callbacks.on_landscape([record])
        # At the last step there is nothing left to resume.
        due = checkpoint_every and step % checkpoint_every == 0 and step < self.steps
        if due and self.on_group_checkpoint is not None and self.training:
            self._compact()
            self.on_group_checkpoint(step, self._snapshot())

    def _landscape_batch(self) -> tuple[Tensor, Tensor]:
        """Each row's batch of the landscape and gradient-based ICS probes."""
        return landscape_batch(self.data, self.train_offsets, self.batch_size, self.device)

    def _probe_inputs(self) -> Tensor:
        """Each row's telemetry probe [rows, P, features], as the stack's telemetry mode asks."""
        return probe_inputs(self.data, self.train_offsets, len(self.rows), self.telemetry_mode, self.device)

    def _evaluate(self) -> None:
        """Each training model's four metrics at the current step; ends those that stop at their target."""
        window_losses = torch.cat(self.window_losses)  # [steps, rows]
        window_correct = torch.cat(self.window_correct)
        self.window_losses, self.window_correct = [], []
        val_loss, val_accuracy = validation_figures(self.stack, self.data, self.val_offsets, self.device)
        table = torch.stack(
            [
                window_losses.double().mean(dim=0),
                window_correct.double().sum(dim=0) / (window_correct.shape[0] * self.batch_size),
                val_loss,
                val_accuracy,
            ]
        ).T.tolist()  # one read from the device for every model's figures
        reached: dict[StackMember, int] = {}
        for member, figures in zip(self.rows, table, strict=True):
            if member.result is not None:
                continue
            points: list[MetricPoint] = member.summary.record_evaluation(
                self.step, figures, member.spec.target_accuracy, self._elapsed_seconds()
            )
            member.callbacks.on_metrics(points)
            if member.spec.stop_at_target and member.summary.steps_to_target is not None:
                reached[member] = self.step
        self._end(reached, "succeeded")

    def _snapshot(self) -> bytes:
        """The stack's checkpoint blob at the current step (taken right after a compaction)."""
        state = StackState(
            step=self.step,
            elapsed_seconds=self._elapsed_seconds(),
            summaries=[member.summary for member in self.members],
            results=[member.result for member in self.members],
            rows=[member.index for member in self.rows],
            window_losses=self.window_losses,
            window_correct=self.window_correct,
            sampler=self.sampler.state_dict(),
            stack=self.stack.state_dict(),
        )
        return save_stack_checkpoint([member.spec for member in self.members], state)

    def restore(self, blob: bytes) -> None:
        """Take up the stack's state from a `_snapshot` blob of the same specs."""
        state = load_stack_checkpoint(blob, [member.spec for member in self.members], self.device)
        for member, summary, result in zip(self.members, state.summaries, state.results, strict=True):
            member.summary = summary
            member.result = result
        self.step = self.first_step = state.step
        self.seconds_before_resume = state.elapsed_seconds
        rows = [self.members[index] for index in state.rows]
        if not rows:
            self.rows = []
            return
        self._build(rows)
        self.stack.load_state_dict(state.stack)
        self.sampler.load_state_dict(state.sampler)
        self.window_losses, self.window_correct = state.window_losses, state.window_correct

    # Results.

    def _elapsed_seconds(self) -> float:
        """Training wall time of the stack, the time before a resume included."""
        return self.seconds_before_resume + time.perf_counter() - self.started_at

    def _steps_per_second(self) -> float | None:
        """The stack's speed in this process: every training model advances this many steps per second."""
        seconds = time.perf_counter() - self.started_at
        steps = self.step - self.first_step
        return steps / seconds if steps > 0 and seconds > 0 else None
