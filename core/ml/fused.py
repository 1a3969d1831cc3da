"""Fused training: `run_fused(specs, callbacks, checkpoint, settings, on_group_checkpoint, on_model_result)
-> list[Result]`.

M jobs that `core.fusion.can_fuse` pairs (one MLP architecture, one optimizer kind, one schedule) train as
ONE stacked model (`core.ml.fused_model`): one batched matmul per layer, one native batch-norm forward
call, one optimizer update (`core.ml.fused_optim`) for all of them. Small nets spend most of a separate
step on per-operation overhead; a fused step pays it once for M models.

Each model stays the job it was:
- it starts from the parameters `build_model` makes under its own seed, draws its batches from its own
  `BatchSampler` seeded like its separate run, and is stepped with its separate run's kernels on the same
  values, so without dropout it follows the separate run's trajectory: on the CPU at one thread its
  parameters, validation figures and accuracies are bit-identical at any layer width (see
  `core.ml.fused_model` for what that takes); train_loss agrees to ~1e-7 relative, its per-step mean
  being summed in another order. The loss the group minimizes is the sum of the
  models' mean losses, whose gradient for each model is that model's own (a mean over models would shrink
  every gradient by 1/M);
- it reports through its own `Callbacks` as `core.ml.run` does: progress at step 0 and at every sync point,
  its four metrics at the same steps, telemetry, loss-landscape probes (each model probed on its own net,
  bound to its slices of the stacks, by its separate run's probe), summary, steps and seconds to target;
- a model whose loss becomes non-finite ends `diverged` at that step and leaves the stacks at the sync point
  that finds it (its NaNs never enter another model's numbers: every kernel keeps models apart), and a model
  whose `should_stop()` is true ends `cancelled` and leaves likewise; the others go on, faster;
- its end is reported the moment it happens: `on_model_result(index, result)` is called once per model, with
  its index in `specs` and its final `Result` (summary included), when it diverges, is cancelled or reaches
  the last step, before the group trains on. A job of a group can thus be finished minutes before the
  group is; the returned list holds the same results.

The loop mirrors `core.ml.training`'s: stretches of steps between sync points, per-step losses and logits
kept on the device until the next one, the same rules for when to evaluate, probe and checkpoint. On a CPU,
a stack of 8-16 models of the paper's MLP runs fastest per model; much larger stacks outgrow the caches
(split large groups, see `core.fusion.fusion_groups`).

Checkpoints are the group's: one blob every `checkpoint_every` steps through `on_group_checkpoint(step, blob)`
— the stacks, the optimizer state, every active model's sampler, the dropout generator, each model's status,
running summary and unreported train figures. `run_fused(specs, callbacks, checkpoint=blob)` continues from
it; a model that had ended before the snapshot returns its stored result without reporting again (nor is
`on_model_result` called for it). The per-model `Callbacks.on_checkpoint` is not called: a model's state
means nothing outside its group's blob. The blob is `torch.save` of plain tensors, numbers and strings,
read back with `weights_only=True`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.fused_groups import can_fuse, fusion_key
from core.ml.checkpoints import SPEC_FIELDS_THAT_DO_NOT_CHANGE_TRAINING, RunningSummary
from core.ml.data import KNOWN_SHA256, load_dataset
from core.ml.fused_model import StackedMLP
from core.ml.fused_optim import StackedOptimizer
from core.ml.landscape import LandscapeProbe
from core.ml.nets import Net, build_model
from core.ml.sampling import BatchSampler
from core.ml.telemetry import layer_telemetry, probe_batch
from core.ml.training import (
    EVAL_BATCH_SIZE,
    FIRST_STRETCH_STEPS,
    MAX_KEPT_LOGITS,
    SYNC_SECONDS,
    resolve_device,
)
from core.results import (
    Callbacks,
    GroupCheckpointHook,
    MetricPoint,
    ModelResultHook,
    Progress,
    Result,
    RunOutcome,
    Summary,
)
from core.settings import Settings, get_settings
from core.spec import JobSpec

__all__ = ["can_fuse", "fusion_key", "run_fused"]

FUSED_CHECKPOINT_FORMAT = 1
MAX_EVAL_VALUES = 1 << 24  # input values of one fused evaluation pass (64 MiB of float32)
# The official train/test split of an IDX dataset does not depend on the seed: load it once per group.
SEED_INDEPENDENT_DATASETS = frozenset(KNOWN_SHA256)


def run_fused(
    specs: Sequence[JobSpec],
    callbacks: Sequence[Callbacks],
    checkpoint: bytes | None = None,
    settings: Settings | None = None,
    on_group_checkpoint: GroupCheckpointHook | None = None,
    on_model_result: ModelResultHook | None = None,
) -> list[Result]:
    """Train `specs` as one fused group; one result per spec, in order. Resume from a group `checkpoint`.

    `on_model_result(index, result)` is told of each model's end as it happens (see the module docstring).

    Raises ValueError when the specs cannot be fused (see `core.fusion.fusion_key`), when `callbacks` does
    not hold one entry per spec, for a device this machine does not have, and for a checkpoint of another
    group (other specs or another order).
    """
    if not specs or len(callbacks) != len(specs):
        raise ValueError("run_fused needs at least one spec and exactly one Callbacks per spec")
    if fusion_key(specs[0]) is None or not all(can_fuse(specs[0], spec) for spec in specs):
        raise ValueError("these specs cannot be trained as one fused group (see core.fusion.fusion_key)")
    settings = settings if settings is not None else get_settings()
    torch.set_num_threads(settings.torch_threads)
    device = resolve_device(specs[0].device)
    data = _GroupData.load(specs, device, settings)
    members = [
        _Member(index, spec, member_callbacks, data.dataset_slots[index])
        for index, (spec, member_callbacks) in enumerate(zip(specs, callbacks, strict=True))
    ]
    return _FusedGroup(members, data, device, on_group_checkpoint, on_model_result, checkpoint).run()


@dataclass(eq=False)  # members are compared and hashed by identity
class _Member:
    """One job of the group: its spec, callbacks and running summary, and how it ended (None: active)."""

    index: int
    spec: JobSpec
    callbacks: Callbacks
    dataset_slot: int
    summary: RunningSummary = field(default_factory=RunningSummary)
    result: Result | None = None


@dataclass(frozen=True)
class _GroupData:
    """Every distinct dataset of the group, flattened and laid end to end: one gather fetches M batches.

    The digits and spirals splits depend on the seed, so models of different seeds train (and are
    validated) on different examples: model m's examples are rows [slot·N, slot·N + N) of `train_x`.
    """

    train_x: Tensor  # [datasets · N, features]
    train_y: Tensor
    val_x: Tensor  # [datasets · V, features]
    val_y: Tensor
    train_size: int
    val_size: int
    input_shape: tuple[int, ...]
    num_classes: int
    dataset_slots: list[int]  # per spec

    @classmethod
    def load(cls, specs: Sequence[JobSpec], device: torch.device, settings: Settings) -> _GroupData:
        seeds: dict[int | None, int] = {}
        dataset_slots = []
        for spec in specs:
            seed = None if spec.dataset in SEED_INDEPENDENT_DATASETS else spec.seed
            dataset_slots.append(seeds.setdefault(seed, len(seeds)))
        datasets = [load_dataset(specs[0].dataset, seed or 0, device, settings) for seed in seeds]
        first = datasets[0]
        if any(len(d.train_y) != len(first.train_y) or len(d.val_y) != len(first.val_y) for d in datasets):
            raise ValueError("the group's datasets differ in size")
        return cls(
            train_x=torch.cat([d.train_x.flatten(1) for d in datasets]),
            train_y=torch.cat([d.train_y for d in datasets]),
            val_x=torch.cat([d.val_x.flatten(1) for d in datasets]),
            val_y=torch.cat([d.val_y for d in datasets]),
            train_size=len(first.train_y),
            val_size=len(first.val_y),
            input_shape=first.input_shape,
            num_classes=max(d.num_classes for d in datasets),
            dataset_slots=dataset_slots,
        )

    def probe_inputs(self, slot: int) -> Tensor:
        """The telemetry probe batch of dataset `slot`, shaped as the nets take it."""
        start = slot * self.train_size
        return probe_batch(self.train_x[start : start + self.train_size]).view(-1, *self.input_shape)


class _FusedGroup:
    """The fused loop and its bookkeeping (used once, by `run_fused`)."""

    def __init__(
        self,
        members: list[_Member],
        data: _GroupData,
        device: torch.device,
        on_group_checkpoint: GroupCheckpointHook | None,
        on_model_result: ModelResultHook | None,
        checkpoint: bytes | None,
    ) -> None:
        first = members[0].spec
        self.members = members
        self.data = data
        self.device = device
        self.on_group_checkpoint = on_group_checkpoint
        self.on_model_result = on_model_result
        self.steps, self.batch_size = first.steps, first.batch_size
        self.eval_every, self.telemetry_every, self.landscape_every, self.checkpoint_every = (
            first.eval_every,
            first.telemetry_every,
            first.landscape_every,
            first.checkpoint_every,
        )
        # Models with equal BN eps and momentum sit next to each other: one batch_norm call per run of them.
        self.active = sorted(members, key=lambda m: (m.spec.bn_eps, m.spec.bn_momentum, m.index))
        self.step = 0
        self.seconds_before_resume = 0.0
        self.window_losses: list[Tensor] = []  # [steps, models] per stretch since the last evaluation
        self.window_correct: list[Tensor] = []
        self.dropout_generator = torch.Generator(device=device)
        self.dropout_generator.manual_seed(first.seed)
        self.last_gradients: list[Tensor] = []
        self.landscape_probes: dict[_Member, LandscapeProbe] = {}  # built at first use, until `_remove`
        self.max_stretch_steps = max(
            1, MAX_KEPT_LOGITS // (len(members) * self.batch_size * data.num_classes)
        )
        self.first_step = 0
        if checkpoint is None:
            self._build_stacks()
        else:
            self._restore(checkpoint)
        self.started_at = time.perf_counter()

    def _build_stacks(self) -> None:
        """Build every active model as its separate run would (seeded) and stack their parameters."""
        self.nets: list[Net] = [
            build_model(member.spec, self.data.input_shape, self.data.num_classes).to(self.device)
            for member in self.active
        ]
        self.model = StackedMLP(self.nets, [member.spec for member in self.active], self.device)
        self.model.bind(self.nets)
        self.optimizer = StackedOptimizer(
            self.active[0].spec.optimizer,
            [member.spec.learning_rate for member in self.active],
            self.model.parameters,
        )
        self.samplers = [
            BatchSampler(self.data.train_size, self.batch_size, member.spec.seed, self.device)
            for member in self.active
        ]
        self._index_offsets()

    def _index_offsets(self) -> None:
        slots = torch.tensor([member.dataset_slot for member in self.active], device=self.device).view(-1, 1)
        self.train_offsets = slots * self.data.train_size
        self.val_offsets = slots * self.data.val_size

    # The loop.

    def run(self) -> list[Result]:
        if not self.active:  # resumed after every model had ended
            return self._results()
        for member in self.active:
            member.callbacks.on_progress(Progress(self.step, self.steps))
        stretch_steps = FIRST_STRETCH_STEPS
        while self.step < self.steps:
            stopping = [member for member in self.active if member.callbacks.should_stop()]
            self._end(dict.fromkeys(stopping, self.step), "cancelled")
            if not self.active:
                break
            steps = min(stretch_steps, self._steps_to_next_event())
            stretch_started = time.perf_counter()
            losses, correct = self._train(steps)
            self.window_losses.append(losses)
            self.window_correct.append(correct)
            diverged = self._first_non_finite(losses)  # the sync point: waits for the device
            self._end({member: self.step + offset + 1 for member, offset in diverged.items()}, "diverged")
            stretch_seconds = time.perf_counter() - stretch_started
            self.step += steps
            if not self.active:
                break
            self._report_due_events()
            progress = Progress(self.step, self.steps, self._steps_per_second())
            for member in self.active:
                member.callbacks.on_progress(progress)
            stretch_steps = self._next_stretch_steps(steps, stretch_seconds)
        self._end(dict.fromkeys(self.active, self.step), "succeeded")
        return self._results()

    def _train(self, steps: int) -> tuple[Tensor, Tensor]:
        """`steps` fused updates; each model's losses and correct counts ([steps, models], on the device)."""
        models, batch = len(self.active), self.batch_size
        # [steps, models, batch]: each model's own batches, shifted to its dataset's rows.
        batches = torch.stack([sampler.next_batches(steps) for sampler in self.samplers], dim=1)
        batches = batches + self.train_offsets
        labels = self.data.train_y[batches]
        train_x, model, optimizer = self.data.train_x, self.model, self.optimizer
        losses: list[Tensor] = []
        logits_seen: list[Tensor] = []
        gradients: list[Tensor] = []
        for step in range(steps):
            inputs = train_x.index_select(0, batches[step].view(-1)).view(models, batch, -1)
            # The loss is the sum of the models' mean losses: each model's gradient is its own loss's.
            model_losses, logits, gradients = model.loss_and_gradients(
                inputs, labels[step].view(-1), self.dropout_generator
            )
            optimizer.step(model.parameters, gradients)
            # Kept, not read: reading a value here would wait for the device at every step.
            losses.append(model_losses)
            logits_seen.append(logits)
        self.last_gradients = gradients
        correct = (torch.stack(logits_seen).argmax(dim=-1) == labels).sum(dim=-1)
        return torch.stack(losses), correct

    def _first_non_finite(self, losses: Tensor) -> dict[_Member, int]:
        """The models with a non-finite loss in this stretch, each with the offset of its first one."""
        finite = torch.isfinite(losses)
        if bool(finite.all()):
            return {}
        non_finite = ~finite
        diverged, first = torch.stack(
            [non_finite.any(dim=0).long(), non_finite.long().argmax(dim=0)]
        ).tolist()
        return {
            member: offset
            for member, has_diverged, offset in zip(self.active, diverged, first, strict=True)
            if has_diverged
        }

    def _end(self, ended: dict[_Member, int], outcome: RunOutcome) -> None:
        """End each model of `ended` (with the steps it completed): take it out, then report its result."""
        results = {member: self._result(member, outcome, steps) for member, steps in ended.items()}
        for member, result in results.items():
            member.result = result
        self._remove(list(ended))
        if self.on_model_result is not None:
            for member, result in results.items():
                self.on_model_result(member.index, result)

    def _remove(self, ended: list[_Member]) -> None:
        """Take the `ended` models out of the group: every stack, state and per-model list shrinks."""
        if not ended:
            return
        slots = [slot for slot, member in enumerate(self.active) if member not in ended]
        self.active = [self.active[slot] for slot in slots]
        self.nets = [self.nets[slot] for slot in slots]
        self.samplers = [self.samplers[slot] for slot in slots]
        if not slots:
            return
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        self.window_losses = [window.index_select(1, index) for window in self.window_losses]
        self.window_correct = [window.index_select(1, index) for window in self.window_correct]
        self.last_gradients = [gradient.index_select(0, index) for gradient in self.last_gradients]
        self.model.keep(slots)
        self.model.bind(self.nets)
        self.landscape_probes.clear()  # they hold the nets' old BN buffers
        self.optimizer.keep(slots)
        self._index_offsets()

    def _steps_to_next_event(self) -> int:
        """Steps until the next step that is evaluated, probed, checkpointed, or the last one."""
        intervals = [self.eval_every, self.telemetry_every, self.landscape_every, self.checkpoint_every]
        following = [self.step + interval - self.step % interval for interval in intervals if interval > 0]
        return min([self.steps, *following]) - self.step

    def _next_stretch_steps(self, steps: int, seconds: float) -> int:
        """As many steps as the last stretch's speed fits into SYNC_SECONDS (at most double the last)."""
        fitting = int(steps * SYNC_SECONDS / seconds) if seconds > 0 else 2 * steps
        return max(1, min(fitting, 2 * steps, self.max_stretch_steps))

    # Evaluation, telemetry, landscape probes, checkpoints.

    def _report_due_events(self) -> None:
        step = self.step
        if step % self.eval_every == 0 or step == self.steps:
            for member, points in zip(self.active, self._evaluate(), strict=True):
                member.callbacks.on_metrics(points)
        if self.telemetry_every and step % self.telemetry_every == 0:
            self.model.bind_gradients(self.nets, self.last_gradients)
            for member, net in zip(self.active, self.nets, strict=True):
                probe = self.data.probe_inputs(member.dataset_slot)
                member.callbacks.on_telemetry(layer_telemetry(net, probe, step))
        if self.landscape_every and step % self.landscape_every == 0:
            for member, net in zip(self.active, self.nets, strict=True):
                if member not in self.landscape_probes:
                    self.landscape_probes[member] = self._landscape_probe(member, net)
                member.callbacks.on_landscape([self.landscape_probes[member](step)])
        # At the last step there is nothing left to resume.
        due = self.checkpoint_every and step % self.checkpoint_every == 0 and step < self.steps
        if due and self.on_group_checkpoint is not None:
            self.on_group_checkpoint(step, self._snapshot())

    def _landscape_probe(self, member: _Member, net: Net) -> LandscapeProbe:
        """Model `member`'s loss-landscape probe, on its net bound to its slices of the stacks.

        The probe is its separate run's, on the same module and values: it moves the slices in place,
        takes gradients with autograd, and puts parameters and BN averages back bit for bit, so its record
        is the separate run's and training goes on as if it had not happened. It holds the net's BN buffers,
        which `_remove` rebinds to new stacks: probes are built anew after it.
        """
        start = member.dataset_slot * self.data.train_size
        train_x = self.data.train_x[start : start + self.batch_size].view(-1, *self.data.input_shape)
        train_y = self.data.train_y[start : start + self.batch_size]
        return LandscapeProbe.for_run(net, train_x, train_y, member.spec)

    def _evaluate(self) -> list[list[MetricPoint]]:
        """Each active model's four metrics at the current step; updates their running summaries."""
        window_losses = torch.cat(self.window_losses)  # [steps, models]
        window_correct = torch.cat(self.window_correct)
        self.window_losses, self.window_correct = [], []
        val_loss, val_accuracy = self._validation_figures()
        table = torch.stack(
            [
                window_losses.double().mean(dim=0),
                window_correct.double().sum(dim=0) / (window_correct.shape[0] * self.batch_size),
                val_loss,
                val_accuracy,
            ]
        ).T.tolist()  # one read from the device for every model's figures
        reports = []
        for member, figures in zip(self.active, table, strict=True):
            reports.append(
                member.summary.record_evaluation(
                    self.step, figures, member.spec.target_accuracy, self._elapsed_seconds()
                )
            )
        return reports

    def _validation_figures(self) -> tuple[Tensor, Tensor]:
        """Each model's mean loss and accuracy on its held-out split, BN's running statistics, no dropout.

        The held-out examples go through in chunks of EVAL_BATCH_SIZE rows, as a separate run's do (a
        chunk of another length would put other values in the nonlinearity's one-by-one tail, see
        `core.ml.fused_model`); where M models' chunks would take more than MAX_EVAL_VALUES input values,
        the models are evaluated a few at a time instead.
        """
        models, size, features = len(self.active), self.data.val_size, self.data.val_x.shape[1]
        rows = max(1, min(EVAL_BATCH_SIZE, MAX_EVAL_VALUES // features))
        models_per_pass = max(1, MAX_EVAL_VALUES // (rows * features))
        loss_sum = torch.zeros(models, dtype=torch.float64, device=self.device)
        correct = torch.zeros(models, dtype=torch.long, device=self.device)
        with torch.no_grad():
            for first in range(0, models, models_per_pass):
                last = min(first + models_per_pass, models)
                model = self.model if last - first == models else self.model.models_between(first, last)
                offsets = self.val_offsets[first:last]
                for start in range(0, size, rows):
                    positions = offsets + torch.arange(start, min(start + rows, size), device=self.device)
                    inputs = self.data.val_x.index_select(0, positions.view(-1)).view(
                        last - first, positions.shape[1], -1
                    )
                    labels = self.data.val_y[positions]
                    logits = model.forward(inputs)
                    # One summed loss per model, as `run` sums its chunks: the figure is the same to the bit.
                    chunk_losses = [
                        F.cross_entropy(model_logits, model_labels, reduction="sum")
                        for model_logits, model_labels in zip(logits, labels, strict=True)
                    ]
                    loss_sum[first:last] += torch.stack(chunk_losses).double()
                    correct[first:last] += (logits.argmax(dim=-1) == labels).sum(dim=1)
        return loss_sum / size, correct.double() / size

    def _snapshot(self) -> bytes:
        """The group's checkpoint blob at the current step."""
        snapshot: dict[str, Any] = {
            "format": FUSED_CHECKPOINT_FORMAT,
            "specs": [_training_fields(member.spec) for member in self.members],
            "step": self.step,
            "elapsed_seconds": self._elapsed_seconds(),
            "summaries": [asdict(member.summary) for member in self.members],
            "results": [_result_fields(member.result) for member in self.members],
            "active": [member.index for member in self.active],
            "samplers": [sampler.state_dict() for sampler in self.samplers],
            "window_losses": _concatenated(self.window_losses, len(self.active), torch.float32),
            "window_correct": _concatenated(self.window_correct, len(self.active), torch.long),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dropout_rng": self.dropout_generator.get_state(),
        }
        buffer = io.BytesIO()
        torch.save(snapshot, buffer)
        return buffer.getvalue()

    def _restore(self, blob: bytes) -> None:
        """Take up the group's state from a `_snapshot` blob of the same group."""
        snapshot = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        if snapshot.get("format") != FUSED_CHECKPOINT_FORMAT:
            raise ValueError(f"unknown fused checkpoint format {snapshot.get('format')!r}")
        if snapshot["specs"] != [_training_fields(member.spec) for member in self.members]:
            raise ValueError("the checkpoint was taken from a group of different specs")
        for member, summary, result in zip(
            self.members, snapshot["summaries"], snapshot["results"], strict=True
        ):
            member.summary = RunningSummary(**summary)
            member.result = None if result is None else _result_from_fields(result)
        self.step = self.first_step = int(snapshot["step"])
        self.seconds_before_resume = float(snapshot["elapsed_seconds"])
        self.active = [self.members[index] for index in snapshot["active"]]
        if not self.active:
            return
        self._build_stacks()
        self.model.load_state_dict(snapshot["model"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        for sampler, state in zip(self.samplers, snapshot["samplers"], strict=True):
            sampler.load_state_dict(state)
        self.dropout_generator.set_state(snapshot["dropout_rng"])
        window_losses, window_correct = snapshot["window_losses"], snapshot["window_correct"]
        self.window_losses = [window_losses.to(self.device)] if window_losses.numel() else []
        self.window_correct = [window_correct.to(self.device)] if window_correct.numel() else []

    # Results.

    def _results(self) -> list[Result]:
        return [member.result for member in self.members if member.result is not None]

    def _elapsed_seconds(self) -> float:
        """Training wall time of the group, the time before a resume included."""
        return self.seconds_before_resume + time.perf_counter() - self.started_at

    def _steps_per_second(self) -> float | None:
        """The group's speed in this process: every active model advances this many steps per second."""
        seconds = time.perf_counter() - self.started_at
        steps = self.step - self.first_step
        return steps / seconds if steps > 0 and seconds > 0 else None

    def _result(self, member: _Member, outcome: RunOutcome, steps_completed: int) -> Result:
        summary = member.summary
        return Result(
            outcome=outcome,
            steps_completed=steps_completed,
            summary=summary.final(
                steps_completed if outcome == "diverged" else None, self._steps_per_second()
            ),
            device=str(self.device),
        )


def _training_fields(spec: JobSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude=set(SPEC_FIELDS_THAT_DO_NOT_CHANGE_TRAINING))


def _result_fields(result: Result | None) -> dict[str, Any] | None:
    return None if result is None else asdict(result)


def _result_from_fields(fields: dict[str, Any]) -> Result:
    return Result(
        outcome=fields["outcome"],
        steps_completed=int(fields["steps_completed"]),
        summary=Summary(**fields["summary"]),
        device=fields["device"],
    )


def _concatenated(parts: list[Tensor], models: int, dtype: torch.dtype) -> Tensor:
    return torch.cat(parts).cpu() if parts else torch.empty(0, models, dtype=dtype)
