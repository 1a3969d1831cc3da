"""The republisher: a thread in every API process that publishes again the jobs the broker lost.

Liveness lives in the job table, not in the broker. Every `settings.republish_seconds` the republisher
publishes
- queued jobs never published `UNPUBLISHED_AFTER_SECONDS` after they were stored (the broker was down when
  they were submitted), or published longer than `REQUEUE_AFTER` ago and still waiting (the message was
  lost);
- queued jobs whose message the broker no longer holds, long before `REQUEUE_AFTER`: those published
  before a Redis broker's last start (a Redis without persistence loses its messages when it restarts),
  and those published over `LOST_MESSAGE_GRACE_SECONDS` ago whose queue is empty (a message a worker
  holds is a job that is running, so an empty queue has none of them);
- running jobs whose lease went stale (their worker died); the next worker takes the lease over and
  resumes from the last checkpoint.
Each job is claimed with a conditional write first (`Store.claim_republish`), so several API replicas can
republish at once and only one of them publishes a given job; a duplicate delivery is dropped by the lease
(a Redis with persistence that kept its messages makes such duplicates: they cost a lease check each).
A job of a fused group is published as its group's task (once per round for the whole group), so a group
whose worker died resumes together from the group's checkpoint.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from api.broker_state import broker_uptime_seconds, queue_sizes
from api.probes import broker_reachable
from core.queue import publish_group, publish_job
from core.settings import Settings
from core.spec import queue_for_device
from core.store import RepublishCandidate, StoreInterface

logger = logging.getLogger(__name__)

UNPUBLISHED_AFTER_SECONDS = 5.0  # the submit path publishes at once; only a failed publish leaves it longer
# A worker takes a job's lease as soon as its message arrives; a job published this long ago, still queued,
# while its queue is empty, has lost its message.
LOST_MESSAGE_GRACE_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0


class Republisher:
    """Runs `republish_once` every `settings.republish_seconds` on a daemon thread between `start` and
    `stop`."""

    def __init__(
        self,
        store: StoreInterface,
        celery_app: Celery,
        settings: Settings,
        unpublished_after_seconds: float = UNPUBLISHED_AFTER_SECONDS,
        lost_message_grace_seconds: float = LOST_MESSAGE_GRACE_SECONDS,
    ) -> None:
        self.store = store
        self.celery_app = celery_app
        self.settings = settings
        self.unpublished_after_seconds = unpublished_after_seconds
        self.lost_message_grace_seconds = lost_message_grace_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="bnlab-republisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.republish_once()
            except Exception:  # a database or broker outage must not end the thread: try again next round
                logger.exception("republishing failed; retrying in %.1f s", self.settings.republish_seconds)
            self._stopping.wait(self.settings.republish_seconds)

    def candidates(self) -> list[RepublishCandidate]:
        requeue_after = self.settings.requeue_after_seconds
        found = [
            *self.store.jobs_needing_publish(self.unpublished_after_seconds, requeue_after),
            *self.lost_messages(),
            *self.store.stale_running_jobs(self.settings.lease_seconds, requeue_after),
        ]
        unique: dict[str, RepublishCandidate] = {}
        for candidate in found:
            unique.setdefault(candidate.job_id, candidate)
        return list(unique.values())

    def lost_messages(self) -> list[RepublishCandidate]:
        """Queued jobs whose message the broker lost: published before its restart, or waiting past the
        grace in a queue that is empty."""
        uptime = broker_uptime_seconds(self.celery_app)
        before_restart: list[RepublishCandidate] = []
        if uptime is not None and uptime < self.settings.requeue_after_seconds:
            # Redis counts its uptime between whole seconds of its clock, so it may be up to a second more
            # or less than the time since the start: one second less reaches back to the start at least.
            # A job published in the two seconds after it may be published twice; the lease drops the copy.
            before_restart = self._published_before(max(uptime - 1, 0))
        waiting = self._published_before(self.lost_message_grace_seconds)
        sizes = queue_sizes(self.celery_app, {queue_for_device(candidate.device) for candidate in waiting})
        in_empty_queues = [
            candidate for candidate in waiting if sizes[queue_for_device(candidate.device)] == 0
        ]
        return [*before_restart, *in_empty_queues]

    def _published_before(self, seconds_ago: float) -> list[RepublishCandidate]:
        """Queued jobs last published more than `seconds_ago` ago (never-published ones are not lost)."""
        candidates = self.store.jobs_needing_publish(self.unpublished_after_seconds, seconds_ago)
        return [candidate for candidate in candidates if candidate.enqueued_at is not None]

    def republish_once(self) -> list[str]:
        """Publish every job that needs it; returns the ids this process published."""
        candidates = self.candidates()
        # A claim marks the job as published: claiming while the broker is down would leave the job
        # waiting for REQUEUE_AFTER, so an unreachable broker skips the round instead.
        if not candidates or not broker_reachable(self.celery_app):
            return []
        published: list[str] = []
        groups_published: set[str] = set()
        for candidate in candidates:
            if not self.store.claim_republish(candidate):
                continue  # another republisher (or the submit path) got there first
            try:
                self._publish(candidate, groups_published)
            except Exception as error:  # whatever the transport raised, the broker is not taking jobs
                # The claim marked the job as published; left in place it would hide the job from the
                # republisher until REQUEUE_AFTER. Undo it (should the message have got through after all, the
                # second copy is dropped by the lease) and leave the rest of the round to the next one.
                self.store.release_republish(candidate)
                logger.warning("could not publish job %s (retrying next round): %s", candidate.job_id, error)
                break
            logger.info("published %s job %s again", candidate.status, candidate.job_id)
            published.append(candidate.job_id)
        return published

    def _publish(self, candidate: RepublishCandidate, groups_published: set[str]) -> None:
        """The job's own task, or its fused group's task unless this round already published it."""
        group = candidate.fused_group
        if group is None:
            publish_job(self.celery_app, candidate.job_id, candidate.device)
        elif group not in groups_published:
            publish_group(self.celery_app, self.store.fused_group_job_ids(group), candidate.device)
            groups_published.add(group)
