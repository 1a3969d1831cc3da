"""A memory ceiling for the processes that train: a job that asks for too much fails, the worker goes on.

Without one, a CPU job whose allocations outgrow the node is killed by the kernel's OOM killer, its pool
child with it: the job then loses its lease again at every delivery until it fails "worker lost 3 times",
and the node suffers meanwhile. With an address-space limit (RLIMIT_AS) on each pool child, the
allocation that crosses it fails inside the job instead (torch raises "DefaultCPUAllocator: not enough
memory", Python a MemoryError): that job ends failed with the message and the worker takes the next one.
"""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)

MEBIBYTE = 1 << 20


def limit_address_space(megabytes: int) -> None:
    """Cap this process's address space at `megabytes` MiB (0: leave it as it is)."""
    if megabytes <= 0:
        return
    _, hard_limit = resource.getrlimit(resource.RLIMIT_AS)
    limit = megabytes * MEBIBYTE
    if hard_limit != resource.RLIM_INFINITY:
        limit = min(limit, hard_limit)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard_limit))
    logger.info("pool process memory limited to %d MiB of address space", limit // MEBIBYTE)
