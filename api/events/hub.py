"""Job event streams: what each stream sends next, and the one poller per API process that feeds them all.

A stream sends, in this order, which is the same on every replay:

    status:1 (queued) · status:2 (running) · metrics:<step> for each evaluation step · status:3 (final)

with `progress` events (the latest step, never replayed, no id) in between. Because the order is fixed,
one `Last-Event-ID` says exactly what a reconnecting client has seen: after `metrics:<s>` it has both
earlier statuses and every metric step up to s; after `status:<k>` the first k status changes. A final
status is sent only after every metric step before it, and ends the stream.

The `EventHub` runs one asyncio task while any stream is open: every `events_poll_seconds` it reads all
watched jobs' rows in one query, and the new metric steps of each job in one query, in a worker thread
(so the event loop never blocks), then hands every stream its next events through an asyncio queue.
Streams wait on their queue and hold no database connection.

On PostgreSQL the hub also listens for the store's change notifications (`core.store.notifications`) on
one connection per API process, kept from the first stream until the app shuts down: a change to a
watched job wakes the poller at once, and the periodic poll remains as the fallback for anything not
announced (and for the time the listener is reconnecting). SQLite has no notifications: embedded
streams are fed by the periodic poll alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.sse import ServerSentEvent
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.store import MAX_METRIC_STEPS_PER_READ, JobEventState, MetricStep, StatusChange, StoreInterface
from core.store.notifications import JobChangeListener

logger = logging.getLogger(__name__)

DATABASE_UNREACHABLE = (OperationalError, PoolTimeoutError)  # the database, not one stream's read

LAST_EVENT_ID_PATTERN = r"^(metrics|status):\d{1,10}$"
MAX_EVENT_NUMBER = 2**31 - 1  # steps and sequence numbers are 32-bit integer columns
RUNNING_SEQ = 2  # metric steps come after status:1 (queued) and status:2 (running)
ProgressKey = tuple[int, int, float | None]


@dataclass
class StreamPosition:
    """How far one stream has got: status changes sent, the last metric step sent, the progress sent."""

    statuses_sent: int = 0
    metric_step: int = -1
    progress: ProgressKey | None = None
    finished: bool = False

    @classmethod
    def after(cls, last_event_id: str | None) -> StreamPosition:
        """Where a stream resumes after the event with this id (from the start when None)."""
        if last_event_id is None:
            return cls()
        if not re.fullmatch(LAST_EVENT_ID_PATTERN, last_event_id):
            raise ValueError(f"not an event id of this stream: {last_event_id!r}")
        kind, _, digits = last_event_id.partition(":")
        number = int(digits)
        if number > MAX_EVENT_NUMBER:
            raise ValueError(
                f"{kind} number {number} is beyond any event of a stream (at most {MAX_EVENT_NUMBER})"
            )
        if kind == "metrics":
            return cls(statuses_sent=RUNNING_SEQ, metric_step=number)
        return cls(statuses_sent=number)


def status_event(change: StatusChange, state: JobEventState) -> ServerSentEvent:
    data: dict[str, Any] = {
        "seq": change.seq,
        "status": change.status,
        "at": change.at.isoformat() if change.at else None,
        "step": state.progress.step if state.progress else None,
    }
    if change.status == state.status and state.is_terminal:
        data["error"] = state.error
        data["summary"] = dataclasses.asdict(state.summary) if state.summary else None
    return ServerSentEvent(event="status", id=f"status:{change.seq}", data=data)


def next_events(
    state: JobEventState, metric_steps: list[MetricStep], metrics_complete: bool, position: StreamPosition
) -> list[ServerSentEvent]:
    """The events a stream at `position` has not had yet, in stream order; advances `position`.

    `metric_steps` are the job's metric steps after some step at or before `position.metric_step`;
    `metrics_complete` says whether they run up to the latest one stored (a long replay comes in parts,
    and the final status must wait for the last part).
    """
    history = state.status_history()
    final = history[-1] if state.is_terminal else None
    if final is not None and position.statuses_sent >= final.seq:  # resumed after the final status
        position.finished = True
        return []
    before_metrics = history[:-1] if final else history
    events = [status_event(change, state) for change in before_metrics[position.statuses_sent :]]
    position.statuses_sent = max(position.statuses_sent, len(before_metrics))

    if state.progress is not None:
        progress = state.progress
        key = (progress.step, progress.steps, progress.steps_per_second)
        if key != position.progress:
            data = {
                "step": progress.step,
                "steps": progress.steps,
                "steps_per_second": progress.steps_per_second,
            }
            events.append(ServerSentEvent(event="progress", data=data))
            position.progress = key

    if state.has_started:
        for point in metric_steps:
            if point.step > position.metric_step:
                values = {"step": point.step, "values": point.values}
                events.append(ServerSentEvent(event="metrics", id=f"metrics:{point.step}", data=values))
                position.metric_step = point.step

    if final is not None and metrics_complete and position.statuses_sent < final.seq:
        events.append(status_event(final, state))
        position.statuses_sent = final.seq
    position.finished = final is not None and position.statuses_sent >= final.seq
    return events


@dataclass(frozen=True)
class Batch:
    """What one poll has for one stream; `finished` means the stream ends after these events."""

    events: list[ServerSentEvent]
    finished: bool


@dataclass(eq=False)
class Subscription:
    """One open stream, as the hub sees it."""

    job_id: str
    position: StreamPosition
    batches: asyncio.Queue[Batch] = field(default_factory=asyncio.Queue)


@dataclass(frozen=True)
class Snapshot:
    """One poll's reads: the watched jobs' states and, per started job, its metric steps past a cursor."""

    states: dict[str, JobEventState]
    metric_steps: dict[str, list[MetricStep]]
    metrics_complete: dict[str, bool]
    failed_reads: dict[str, Exception]  # by job: the metric read past its cursor failed


class EventHub:
    """Feeds every open event stream of one API process from one polling task.

    The task runs only while a stream is open; a new stream wakes it at once, so its first events do
    not wait for the next tick, and so does a change notification for a watched job (PostgreSQL).
    `close()` stops the hub's tasks (the app's shutdown).
    """

    def __init__(
        self, store: StoreInterface, poll_seconds: float, max_metric_steps: int = MAX_METRIC_STEPS_PER_READ
    ) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._max_metric_steps = max_metric_steps
        self._subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener = (
            JobChangeListener(store.url, on_change=self._job_changed, on_connected=self._wake.set)
            if store.is_postgres
            else None
        )
        self._listener_task: asyncio.Task[None] | None = None
        self._reads_failing = False  # logged once per outage, not at every poll
        self.polls = 0  # how many polls ran, for tests and diagnostics
        self.wakeups = 0  # how many change notifications woke the poller, likewise

    @property
    def open_streams(self) -> int:
        return len(self._subscriptions)

    @property
    def is_listening(self) -> bool:
        """Whether change notifications reach this hub now (never on SQLite)."""
        return self._listener is not None and self._listener.listening

    def subscribe(self, job_id: str, position: StreamPosition) -> Subscription:
        subscription = Subscription(job_id, position)
        self._subscriptions.add(subscription)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="bnlab-event-poller")
        if self._listener is not None and self._listener_task is None:
            self._listener_task = asyncio.create_task(self._listener.run(), name="bnlab-job-change-listener")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def close(self) -> None:
        """Stop polling and listening; open streams get nothing more."""
        tasks = [task for task in (self._task, self._listener_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._listener_task = None

    def _job_changed(self, job_id: str) -> None:
        """A change notification: poll now if a stream watches that job (others' changes cost nothing)."""
        if any(subscription.job_id == job_id for subscription in self._subscriptions):
            self.wakeups += 1
            self._wake.set()

    async def _run(self) -> None:
        while self._subscriptions:
            self._wake.clear()
            try:
                await self._poll()
            except Exception as error:  # the shared read failed (the database briefly down): all wait
                if not self._reads_failing:
                    logger.warning(
                        "reading job events failed, retrying every poll: %s",
                        error,
                        exc_info=not isinstance(error, DATABASE_UNREACHABLE),  # a bug deserves its traceback
                    )
                self._reads_failing = True
            else:
                if self._reads_failing:
                    logger.warning("reading job events works again")
                self._reads_failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def _poll(self) -> None:
        subscriptions = list(self._subscriptions)
        cursors: dict[str, int] = {}
        for subscription in subscriptions:
            step = subscription.position.metric_step
            cursors[subscription.job_id] = min(step, cursors.get(subscription.job_id, step))
        snapshot = await asyncio.to_thread(self._read, cursors)
        self.polls += 1
        for subscription in subscriptions:
            try:
                self._serve(subscription, snapshot, cursors)
            except Exception:  # one stream's bad data ends that stream, never the poller
                logger.exception(
                    "ending the event stream of job %s: its events cannot be made", subscription.job_id
                )
                self._finish(subscription, [])
        if snapshot.failed_reads or not all(snapshot.metrics_complete.values()):
            # The rest of a long replay, or the streams that waited behind a failed read, follow at once.
            self._wake.set()

    def _serve(self, subscription: Subscription, snapshot: Snapshot, cursors: dict[str, int]) -> None:
        """Hands one stream its next events from the snapshot (or ends it)."""
        job_id = subscription.job_id
        state = snapshot.states.get(job_id)
        if state is None:  # the job is gone: nothing more will come
            self._finish(subscription, [])
            return
        failure = snapshot.failed_reads.get(job_id)
        if failure is not None:
            if subscription.position.metric_step == cursors[job_id]:  # its own cursor failed: it ends
                logger.error(
                    "ending the event stream of job %s after metric step %d: reading it failed: %s",
                    job_id,
                    subscription.position.metric_step,
                    failure,
                )
                self._finish(subscription, [])
            return  # another stream's cursor failed: this one is served at the next poll
        events = next_events(
            state,
            snapshot.metric_steps.get(job_id, []),
            snapshot.metrics_complete.get(job_id, True),
            subscription.position,
        )
        if subscription.position.finished:
            self._finish(subscription, events)
        elif events:
            subscription.batches.put_nowait(Batch(events, finished=False))

    def _finish(self, subscription: Subscription, events: list[ServerSentEvent]) -> None:
        subscription.batches.put_nowait(Batch(events, finished=True))
        self.unsubscribe(subscription)

    def _read(self, cursors: dict[str, int]) -> Snapshot:
        """Runs in a worker thread. Job rows are read before metrics: a final status read here was
        committed after its job's last metrics, so those are visible to the second read.

        A database that cannot be reached fails the whole read (every stream waits); any other error
        in one job's metric read is kept for that job, so it cannot stop the other jobs' streams."""
        states = self._store.job_event_states(list(cursors))
        metric_steps: dict[str, list[MetricStep]] = {}
        complete: dict[str, bool] = {}
        failed: dict[str, Exception] = {}
        for job_id, state in states.items():
            if not state.has_started:
                continue
            try:
                steps = self._store.metric_steps_after(job_id, cursors[job_id], self._max_metric_steps)
            except DATABASE_UNREACHABLE:
                raise
            except Exception as error:  # e.g. a cursor the column cannot hold ("integer out of range")
                failed[job_id] = error
                continue
            metric_steps[job_id] = steps
            complete[job_id] = len(steps) < self._max_metric_steps
        return Snapshot(states, metric_steps, complete, failed)
