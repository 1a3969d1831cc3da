"""The CPU priority of the processes that train: below the API's, so that a burst of requests is served
while every core trains.

Training is batch work that takes whatever CPU it is given; requests are short and someone waits for each.
On a machine the workers share with the API (the embedded mode, or compose on one host), a pool child at
the default priority gets an equal share of a busy machine per runnable thread, and a 2-core machine
training on two workers leaves the API a third of a core. With a nice value the kernel's scheduler weighs
the API's threads ~10x as heavily (nice 10) while it is busy and gives the training all of the CPU again
the moment it is idle: training loses only the time the requests actually take.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def lower_priority(niceness: int) -> None:
    """Raise this process's nice value to `niceness` (never lower it: an unprivileged process cannot, and
    an operator's `nice` on the whole worker stays). Threads started afterwards inherit it."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness <= current:
        return
    os.setpriority(os.PRIO_PROCESS, 0, niceness)
    logger.info("pool process niceness %d (training yields the CPU to the API)", niceness)
