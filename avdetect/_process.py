"""Child processes that must not outlive their parent (scan's pool workers, the face worker), and
the cores this process may use."""
from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger(__name__)


def die_with_parent(parent_pid: int) -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``),
    so a worker (a scan's, holding a model of about 0.5 GB; a face worker) never outlives a
    killed parent; elsewhere, or if the call fails, nothing changes (a warning is logged). Exits
    at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
                log.warning("PR_SET_PDEATHSIG failed (errno %d): this worker may outlive its parent", ctypes.get_errno())
        except (OSError, AttributeError) as err:
            log.warning("PR_SET_PDEATHSIG unavailable (%s): this worker may outlive its parent", err)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; elsewhere than Linux, all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
