"""Child processes that must not outlive their parent (scan's pool workers, the face worker), the
environment of the child processes avdetect starts, and the cores this process may use."""
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


#: glibc malloc settings of the child processes avdetect starts (ffmpeg, the face worker): blocks
#: of up to 32 MB come from the heap and up to 128 MB of free heap is kept, instead of a fresh
#: memory mapping for every block over 128 kB whose pages fault in on first touch and go back to
#: the kernel when freed. A decoder allocates a frame buffer per frame and the face worker its
#: crops per window: on a 2-minute 512-px video the children's page faults fell from about
#: 240,000 to 55,000 and their CPU time by an eighth (face worker 10.8 -> 9.4 s, ffmpeg 2.7 -> 2.2 s);
#: the whole command used 7 % less CPU and 20-50 MB more memory. Ignored outside glibc.
CHILD_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728"


def child_env() -> dict[str, str]:
    """The environment for a child process avdetect starts: this one's, with
    :data:`CHILD_MALLOC_TUNABLES` added to ``GLIBC_TUNABLES`` unless it already sets malloc
    tunables of its own (a caller's choice wins)."""
    env = dict(os.environ)
    current = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." not in current:
        env["GLIBC_TUNABLES"] = f"{current}:{CHILD_MALLOC_TUNABLES}" if current else CHILD_MALLOC_TUNABLES
    return env


def enlarge_pipe(fd: int, size: int = 1 << 20) -> None:
    """Give the pipe ``fd`` belongs to ``size`` bytes of buffer (Linux ``F_SETPIPE_SZ``; 1 MB is
    the most an unprivileged process may ask by default): a child that writes frames or windows
    of hundreds of kB then wakes its reader a few times per item instead of once per 64 kB.
    Elsewhere, or if refused, the pipe keeps its size."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError) as err:
        log.debug("pipe buffer left as it is (%s)", err)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; elsewhere than Linux, all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
