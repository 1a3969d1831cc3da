"""The order of a job's event stream, decided from job states alone: what a stream at a given position
gets next, and where a Last-Event-ID puts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.sse import ServerSentEvent

from api.events.hub import StreamPosition, next_events
from core.results import Progress, Summary
from core.store import JobEventState, MetricStep

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def state(status: str, step: int | None = None, started: bool = True) -> JobEventState:
    started = started and status != "queued"
    return JobEventState(
        id="a" * 32,
        status=status,
        created_at=CREATED,
        started_at=CREATED + timedelta(seconds=1) if started else None,
        finished_at=CREATED + timedelta(seconds=2) if status in {"succeeded", "cancelled"} else None,
        progress=Progress(step, 30, 100.0) if step is not None else None,
        summary=Summary(final_val_accuracy=0.9) if status == "succeeded" else None,
        error=None,
    )


def metric_steps(*steps: int) -> list[MetricStep]:
    return [MetricStep(step, {"val_accuracy": step / 100}) for step in steps]


def ids(events: list[ServerSentEvent]) -> list[str | None]:
    """Each event's id, or its kind for a progress event (which has none)."""
    return [event.id or event.event for event in events]


def test_a_finished_job_from_the_start_replays_in_stream_order_and_finishes() -> None:
    position = StreamPosition()
    events = next_events(state("succeeded", 30), metric_steps(10, 20, 30), True, position)
    assert ids(events) == [
        "status:1",
        "status:2",
        "progress",
        "metrics:10",
        "metrics:20",
        "metrics:30",
        "status:3",
    ]
    assert position.finished


def test_the_final_status_waits_for_the_rest_of_a_long_replay() -> None:
    position = StreamPosition()
    first = next_events(state("succeeded", 30), metric_steps(10, 20), False, position)
    assert ids(first)[-1] == "metrics:20" and not position.finished
    rest = next_events(state("succeeded", 30), metric_steps(30), True, position)
    assert ids(rest) == ["metrics:30", "status:3"] and position.finished


def test_progress_is_sent_only_when_it_changed() -> None:
    position = StreamPosition()
    assert "progress" in ids(next_events(state("running", 10), [], True, position))
    assert next_events(state("running", 10), [], True, position) == []
    assert ids(next_events(state("running", 20), [], True, position)) == ["progress"]


def test_metrics_of_a_job_read_as_not_started_wait_for_its_running_status() -> None:
    position = StreamPosition()
    assert ids(next_events(state("queued"), metric_steps(10), True, position)) == ["status:1"]
    assert ids(next_events(state("running", 10), metric_steps(10), True, position)) == [
        "status:2",
        "progress",
        "metrics:10",
    ]


@pytest.mark.parametrize(
    ("last_event_id", "expected"),
    [
        ("status:1", ["status:2", "metrics:10", "metrics:20", "status:3"]),
        ("status:2", ["metrics:10", "metrics:20", "status:3"]),
        ("metrics:10", ["metrics:20", "status:3"]),
        ("metrics:20", ["status:3"]),
        ("status:3", []),
    ],
)
def test_a_last_event_id_resumes_right_after_that_event(last_event_id: str, expected: list[str]) -> None:
    position = StreamPosition.after(last_event_id)
    events = next_events(state("succeeded"), metric_steps(10, 20), True, position)
    assert ids(events) == expected
    assert position.finished


def test_a_job_cancelled_while_queued_ends_at_its_second_status() -> None:
    position = StreamPosition.after("status:1")
    assert ids(next_events(state("cancelled", started=False), [], True, position)) == ["status:2"]
    assert position.finished


@pytest.mark.parametrize("last_event_id", ["progress", "metrics:", "status:x", "metrics:1 2"])
def test_an_id_this_stream_never_sent_is_refused(last_event_id: str) -> None:
    with pytest.raises(ValueError, match="not an event id"):
        StreamPosition.after(last_event_id)
