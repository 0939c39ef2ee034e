"""Scan a folder of media files into an append-only, resumable JSON-lines results file.

    summary = scan("corpus/", "results.jsonl", workers=2)

Each file gets exactly one line, written (and flushed to disk) as soon as it is done:
``{"file": <path relative to the folder>, "status": "ok", "verdict": ..., "fake_probability": ...,
"segments": [[start_s, end_s, score, modality], ...], "report": {...}}`` or, when it failed,
``{"file": ..., "status": "error", "error_type": ..., "error": <one line>}``. One failure never
stops the scan. Running the same scan again skips every file that already has a line (failed
ones too, unless ``retry_failed``), so a scan killed at any point resumes without redoing or
losing work; a line cut short by the kill is ignored (and its file redone). Ctrl-C (SIGINT)
stops a scan at once, workers and files in flight included, with every finished line kept
(:class:`ScanInterrupted`). The results file must be a regular file (or not exist yet): a
device, a named pipe or a folder is refused before anything is read or run.

**Inputs**: a folder (searched recursively; lines are keyed by the path relative to it) or a
list file of paths or ``file://`` URIs, one per line (``#`` comments and blank lines skipped;
relative paths are relative to the list's folder; lines are keyed by the path as written).

**Engines** run the same per-file work (:func:`_record`, one loaded detector per worker):
``local`` (default) in this process or a pool of ``workers`` processes; ``ray`` as tasks on a
pool of Ray actors (``address``: a running cluster, e.g. ``auto`` or ``HOST:6379``; None: a
local Ray started for the scan), each actor holding one detector (``ray_cpus`` / ``ray_gpus``
per actor). Only the driver writes the results file, so a worker that dies loses nothing: its
file goes back to the queue (and is recorded as failed after :data:`RAY_FILE_ATTEMPTS` deaths,
so a file that kills workers cannot stall the scan); a driver that dies leaves the complete
lines, and the same command resumes. Every worker must be able to read the media paths (and the
checkpoint folder, unless it is a shipped one) at the same location as the driver: a shared
file system.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avdetect.errors import AVDetectError, ConfigError, ScanError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
RAY_FILE_ATTEMPTS = 3  # a file whose worker died this many times is recorded as failed
RAY_ACTOR_RESTARTS = 3  # a Ray actor is restarted (its model reloaded) at most this often

MEDIA_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".ts",
                    ".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus"}


@dataclass
class ScanSummary:
    """What a scan did (this run) and what the results file holds now."""

    out: str
    found: int = 0  # media files under the folder
    skipped: int = 0  # already in the results file
    done: int = 0  # processed in this run (ok + failed)
    ok: int = 0
    failed: int = 0
    fake: int = 0  # among ok ones of this run
    worker_deaths: int = 0  # Ray engine: tasks lost with their worker (and queued again)
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "file: error" of this run
    unreadable: list[str] = field(default_factory=list)  # "folder: reason" of folders that could not be searched

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a scan. Every file finished before it has its line in the results
    file (the files in flight have none, and are done by the next run of the same scan);
    ``summary`` is the :class:`ScanSummary` so far."""

    def __init__(self, summary: ScanSummary):
        super().__init__(f"scan interrupted after {summary.done} files")
        self.summary = summary


def find_media(directory: str | Path, unreadable: list[str] | None = None) -> list[Path]:
    """Media files under ``directory`` (recursive, by extension; symbolic links to folders are
    not followed, so a link loop cannot hang the scan), sorted. Folders that cannot be read
    (permission denied, gone) are not silently skipped: each is logged and, when ``unreadable``
    is given, appended to it as ``"folder: reason"``. Nor are names with a media extension that
    are not regular files (a dangling or looping symbolic link, a named pipe, a device): they are
    listed, and their detection fails with the media layer's one-line reason, recorded as any
    other failed file."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError("not a folder", root)

    def failed(err: OSError) -> None:
        line = f"{err.filename}: {err.strerror or err}"
        log.warning("cannot read folder %s", line)
        if unreadable is not None:
            unreadable.append(line)

    found = []
    for folder, _dirs, names in os.walk(root, onerror=failed):
        for name in names:
            p = Path(folder) / name
            if p.suffix.lower() in MEDIA_EXTENSIONS and not p.is_dir():
                found.append(p)
    return sorted(found)


def list_inputs(source: str | Path, unreadable: list[str] | None = None) -> list[tuple[str, Path]]:
    """``(key, path)`` of the files to scan: a folder (keys relative to it; folders that cannot
    be read go to ``unreadable``, see :func:`find_media`) or a list file of paths (keys as
    written). See the module docstring."""
    src = Path(source)
    if src.is_dir():
        return [(p.relative_to(src).as_posix(), p) for p in find_media(src, unreadable)]
    if not src.is_file():
        raise ConfigError("not a folder or a list file of paths", src)
    items: dict[str, Path] = {}
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("not a folder, and not a text list of paths (one per line)", src) from None
    for line in text.splitlines():
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if key.startswith("file://"):  # a file URI is a path every worker reads at the same place
            p = Path(urllib.parse.unquote(urllib.parse.urlsplit(key).path))
        elif "://" in key:
            raise ConfigError(f"{key!r}: only file:// URIs and paths are read by the scan; list paths that every "
                              "worker can read (e.g. a mounted bucket)", src)
        else:
            p = Path(key).expanduser()
        items.setdefault(key, p if p.is_absolute() else (src.parent / p).resolve())
    return list(items.items())


#: Longest results line read back (a report with per-frame tracks of an hour of video is a few MB):
#: a longer one means the file is not a results file, and reading it whole could fill memory.
MAX_RESULT_LINE_BYTES = 64 << 20


def read_results(out: str | Path) -> dict[str, dict]:
    """``{file: record}`` of the complete lines of a results file (later lines win). Only a
    regular file is read, and in lines of at most :data:`MAX_RESULT_LINE_BYTES`: a device
    (``/dev/zero`` never ends a line), a named pipe (blocks), a folder or a file that is not
    JSON lines (a video given as ``--out`` by mistake) is a :class:`~avdetect.errors.ScanError`,
    never read into memory nor appended to."""
    from avdetect.report.writers import refuse_special_file

    p = Path(out)
    refuse_special_file(p, "the results file", ScanError)
    records: dict[str, dict] = {}
    if not p.exists():
        return records
    with p.open("rb") as fh:
        k = 0
        while True:
            raw = fh.readline(MAX_RESULT_LINE_BYTES + 1)
            if not raw:
                break
            k += 1
            if k == 1 and not raw.lstrip().startswith(b"{"):
                raise ScanError("is not a scan results file (JSON lines); give a new file or an earlier results file", p)
            if len(raw) > MAX_RESULT_LINE_BYTES:
                raise ScanError(f"line {k} is longer than {MAX_RESULT_LINE_BYTES >> 20} MiB: not a scan results file", p)
            if not raw.endswith(b"\n"):
                log.warning("%s: line %d is incomplete (interrupted write); its file will be redone", p, k)
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("%s: line %d is not JSON; ignored", p, k)
                continue
            if isinstance(rec, dict) and "file" in rec:
                records[rec["file"]] = rec
    return records


def _record(rel: str, path: Path, detector) -> dict:
    """One results line for one file (never raises for a bad file)."""
    t0 = time.perf_counter()
    try:
        report = detector.detect(path)
    except AVDetectError as err:
        return {"file": rel, "status": "error", "error_type": type(err).__name__, "error": str(err),
                "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as err:  # noqa: BLE001 - recorded as a failure line, the scan goes on
        log.exception("%s: internal error", path)
        return {"file": rel, "status": "error", "error_type": type(err).__name__, "error": f"internal error: {err}",
                "seconds": round(time.perf_counter() - t0, 3)}
    d = report.to_dict()
    d["thumbnails"] = []  # keep lines small; thumbnails belong in per-file HTML reports
    return {"file": rel, "status": "ok", "verdict": d["verdict"], "fake_probability": d["fake_probability"],
            "segments": report.segment_rows(), "seconds": round(time.perf_counter() - t0, 3), "report": d}


# worker processes hold one detector each
_WORKER_DETECTOR = None


def _worker_init(checkpoint, device, options: dict, threads: int) -> None:
    global _WORKER_DETECTOR
    import torch

    torch.set_num_threads(max(1, threads))
    from avdetect.api import Detector

    _WORKER_DETECTOR = Detector.from_pretrained(checkpoint, device=device, **options)


def _worker_options(options: dict, cores_each: float) -> dict:
    """The detect options of a scan worker with ``cores_each`` cores of its own: under two, faces
    are tracked in a thread (``prefetch="thread"``) unless the caller chose a mode other than
    ``"auto"``: a face worker process per file would only take a core another scan worker is using
    (4 one-minute real clips, 2 workers on 2 cores: 14.7-15.4 s in threads against 16.0-18.0 s with
    a face worker each)."""
    if options.get("prefetch", "auto") != "auto" or cores_each >= 2:
        return options
    return {**options, "prefetch": "thread"}


def _pool_worker_init(parent_pid: int, checkpoint, device, options: dict, threads: int) -> None:
    """Initialiser of the local pool's workers: die with the scan and leave Ctrl-C to it (the
    parent stops the workers; a SIGINT sent to the whole group would otherwise print a
    traceback per worker), then load the detector."""
    import signal
    import threading

    from tqdm import tqdm

    from avdetect._process import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock is a named multiprocessing semaphore: one left by a killed worker makes
    # the resource tracker warn at exit; workers draw no bars, a thread lock is enough
    tqdm.set_lock(threading.RLock())
    die_with_parent(parent_pid)
    _worker_init(checkpoint, device, options, threads)


def _worker_run(rel: str, path: str) -> dict:
    return _record(rel, Path(path), _WORKER_DETECTOR)


class _RayScanWorker:
    """A Ray actor holding one detector (decorated with ``ray.remote`` when the engine runs)."""

    def __init__(self, checkpoint, device, options: dict, threads: int):
        _worker_init(checkpoint, device, options, threads)

    def pid(self) -> int:
        return os.getpid()

    def run(self, rel: str, path: str) -> dict:
        return _worker_run(rel, path)


class _Writer:
    """Appends one JSON line per record, flushed and synced, after repairing a cut last line."""

    def __init__(self, out: Path):
        needs_newline = False
        try:
            size = out.stat().st_size if out.exists() else 0
            if size:
                with out.open("rb") as fh:  # only the last byte is read, however long the file
                    fh.seek(size - 1)
                    needs_newline = fh.read(1) != b"\n"
            self.fh = out.open("a", encoding="utf-8")
        except OSError as err:
            raise ScanError(f"cannot write the results file ({err.strerror or err})", out) from None
        if needs_newline:  # a line cut by a kill: end it, so the next record starts clean
            self.fh.write("\n")

    def write(self, rec: dict) -> None:
        self.fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def scan(directory: str | Path, out: str | Path, workers: int | None = 1, checkpoint: str | Path | None = None,
         device: str | None = None, retry_failed: bool = False, quiet: bool = True, detector=None,
         engine: str = "local", address: str | None = None, ray_cpus: float = 1.0, ray_gpus: float = 0.0,
         **options) -> ScanSummary:
    """Detect every media file of ``directory`` (a folder, or a list file of paths) into ``out``
    (JSON lines); see the module docstring.

    ``engine="local"``: ``workers > 1`` runs that many processes, each with its own model (one
    thread each). ``engine="ray"``: ``workers`` Ray actors (None: as many as the cluster's CPUs,
    or GPUs when ``ray_gpus`` > 0, allow), on the cluster at ``address``.
    ``detector``: an already loaded :class:`avdetect.api.Detector` (local engine, one process only).
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown scan engine {engine!r}: {' or '.join(ENGINES)}")
    if engine != "local" and detector is not None:
        raise ConfigError("a loaded detector can only be used with the local engine")
    if address is not None and engine != "ray":
        raise ConfigError("an address is for the ray engine (--engine ray)")
    from avdetect.report.writers import check_target, refuse_special_file

    t_start = time.perf_counter()
    # the results file first: a device, a FIFO or a folder given as --out is refused before anything is read
    out = check_target(out, label="the results file", error=ScanError)
    refuse_special_file(_ResultsLock.path_for(out), "the results file's lock", ScanError)
    root = Path(directory)
    unreadable: list[str] = []
    files = list_inputs(root, unreadable)
    lock = _ResultsLock(out)  # before reading: two scans must not both see the same files as to do
    try:
        return _scan_locked(root, files, unreadable, out, t_start, workers=workers, checkpoint=checkpoint, device=device,
                            retry_failed=retry_failed, quiet=quiet, detector=detector, engine=engine, address=address,
                            ray_cpus=ray_cpus, ray_gpus=ray_gpus, options=options)
    finally:
        lock.release()


class _ResultsLock:
    """An exclusive lock on a results file for the length of a scan (``fcntl.flock`` on a
    ``.lock`` file beside it, released by the kernel when the process dies): a second scan on
    the same results file is refused with the first one's pid instead of doing every file twice."""

    @staticmethod
    def path_for(out: Path) -> Path:
        return out.with_name(out.name + ".lock")

    def __init__(self, out: Path):
        import fcntl

        self.path = self.path_for(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.fh = self.path.open("a+", encoding="utf-8")
        except OSError as err:
            raise ScanError(f"cannot create the lock file beside the results file ({err.strerror or err})",
                            self.path) from None
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            pid = self.fh.read().strip() or "?"
            self.fh.close()
            raise ScanError(f"another scan (pid {pid}) is writing this results file; wait for it or use another --out",
                            out) from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def release(self) -> None:
        self.fh.close()  # closing drops the lock; the file stays (removing it would race a waiting scan)


def _scan_locked(root: Path, files, unreadable: list[str], out: Path, t_start: float, *, workers, checkpoint, device,
                 retry_failed: bool, quiet: bool, detector, engine: str, address, ray_cpus: float, ray_gpus: float,
                 options: dict) -> ScanSummary:
    previous = read_results(out)
    summary = ScanSummary(out=str(out), found=len(files), unreadable=unreadable)
    todo: list[tuple[str, Path]] = []
    for rel, p in files:
        rec = previous.get(rel)
        if rec is not None and (rec.get("status") == "ok" or not retry_failed):
            summary.skipped += 1
            continue
        todo.append((rel, p))
    log.info("scan %s: %d files, %d already done, %d to do (%s engine)", root, len(files), summary.skipped, len(todo),
             engine)
    from tqdm import tqdm

    writer = _Writer(out)
    bar = tqdm(total=len(todo), unit="file", disable=quiet)

    def take(rec: dict) -> None:
        writer.write(rec)
        summary.done += 1
        if rec["status"] == "ok":
            summary.ok += 1
            summary.fake += rec["verdict"] == "fake"
        else:
            summary.failed += 1
            summary.failures.append(f"{rec['file']}: {rec['error']}")
        bar.update(1)

    try:
        if not todo:
            pass
        elif engine == "ray":
            _run_ray(todo, take, summary, out, workers=workers, checkpoint=checkpoint, device=device, options=options,
                     address=address, cpus=ray_cpus, gpus=ray_gpus)
        elif (workers or 1) <= 1 or len(todo) <= 1:
            if detector is None:
                from avdetect.api import Detector

                detector = Detector.from_pretrained(checkpoint, device=device, **options)
            for rel, p in todo:
                take(_record(rel, p, detector))
        else:
            _run_pool(todo, take, summary, out, workers=workers, checkpoint=checkpoint, device=device,
                      options=options, detector=detector)
    except KeyboardInterrupt:
        raise ScanInterrupted(summary) from None
    finally:
        bar.close()
        writer.close()
        summary.seconds = round(time.perf_counter() - t_start, 3)
    return summary


def _run_pool(todo, take, summary: ScanSummary, out: Path, *, workers: int, checkpoint, device, options: dict,
              detector) -> None:
    """The local engine with ``workers`` processes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if detector is not None:
        raise ConfigError("a loaded detector can only be used with workers=1")
    from avdetect.checkpoints import resolve_checkpoint

    resolve_checkpoint(checkpoint)  # a missing checkpoint: one clear error, not N broken workers
    ctx = mp.get_context("spawn")
    ckpt = None if checkpoint is None else str(checkpoint)
    from avdetect._process import usable_cores

    options = _worker_options(options, usable_cores() / workers)
    # workers are started from this (the calling) thread and die with this process (avdetect._process.die_with_parent)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_worker_init,
                               initargs=(os.getpid(), ckpt, device, options, 1))
    try:
        futures = [pool.submit(_worker_run, rel, str(p)) for rel, p in todo]
        try:
            for fut in as_completed(futures):
                take(fut.result())
        except BrokenProcessPool as err:
            # which file killed the worker is unknown: stop, keep every line written so far
            raise ScanError(f"a worker process died ({err}); {summary.done} results were written, "
                            f"{len(todo) - summary.done} files are left: run the same command again to "
                            "resume (or with --workers 1 to find the file that crashes)", out) from None
    except BaseException:
        # Ctrl-C or an error: waiting for the files in flight (shutdown's default) would take as long
        # as the slowest of them; they have no line yet, so the next run does them
        _stop_pool(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_pool(pool) -> None:
    """Stop a process pool now: queued files are cancelled and the workers killed."""
    # the executor keeps its worker processes in `_processes` (CPython 3.10-3.13); the public
    # shutdown() can only wait for them or leave them running
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.kill()


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"


def _run_ray(todo, take, summary: ScanSummary, out: Path, *, workers: int | None, checkpoint, device,
             options: dict, address: str | None, cpus: float, gpus: float) -> None:
    """The Ray engine: one in-flight file per actor; a file whose actor died is queued again."""
    from collections import Counter, deque

    try:
        import ray
        from ray.exceptions import ActorDiedError, ObjectLostError, RayActorError, RayTaskError
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install 'avdetect[ray]' (on the driver and every node)") from None
    if cpus <= 0 or gpus < 0:
        raise ConfigError(f"Ray workers need > 0 CPUs and >= 0 GPUs each, got {cpus} and {gpus}")
    from avdetect.checkpoints import resolve_checkpoint

    resolve_checkpoint(checkpoint)  # a missing checkpoint: one clear error before any worker starts
    started_here = not ray.is_initialized()
    if started_here:
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if address is None and workers:  # a local Ray sized for the scan
            init["num_cpus"] = max(1, int(round(workers * cpus)))
        try:
            ray.init(address=address, **init)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ScanError(f"cannot start or reach Ray at {address or 'a new local cluster'}: {_one_line(err)}") from None
    actors: list = []
    try:
        if not workers:
            res = ray.cluster_resources()
            workers = int(res.get("GPU", 0) // gpus) if gpus > 0 else int(res.get("CPU", 1) // cpus)
            workers = max(1, workers)
        workers = min(workers, len(todo))
        dev = device or ("cuda" if gpus > 0 else "cpu")
        remote_cls = ray.remote(_RayScanWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=RAY_ACTOR_RESTARTS, max_task_retries=0)
        ckpt = None if checkpoint is None else str(Path(checkpoint).resolve() if Path(checkpoint).exists() else checkpoint)
        options = _worker_options(options, cpus)
        actors = [remote_cls.remote(ckpt, dev, options, max(1, int(cpus))) for _ in range(workers)]
        try:  # every worker loads its model before the first file: a broken setup is one clear error
            ray.get([a.pid.remote() for a in actors])
        except (RayActorError, RayTaskError) as err:
            raise ScanError(f"the Ray workers could not load the model: {_one_line(err)}") from None
        log.info("ray engine: %d workers (%g CPU, %g GPU each) on %s", workers, cpus, gpus, address or "a local Ray")

        pending = deque(todo)
        idle = deque(range(len(actors)))
        calls: dict = {}  # ref -> (k, rel, path) of a file, or (k, None, None) of a probe of a restarted worker
        waiting: dict[int, float] = {}  # worker -> when to probe it again (it is restarting)
        attempts: Counter = Counter()
        deaths: Counter = Counter()
        while pending or any(rel is not None for _k, rel, _p in calls.values()):
            now = time.monotonic()
            for k in [k for k, t in waiting.items() if t <= now]:
                del waiting[k]
                calls[actors[k].pid.remote()] = (k, None, None)
            while idle and pending:
                k = idle.popleft()
                rel, p = pending.popleft()
                calls[actors[k].run.remote(rel, str(p))] = (k, rel, p)
            if not calls and not waiting:  # files left, no worker left
                raise ScanError(f"every Ray worker died too often; {summary.done} results were written, "
                                f"{len(pending)} files are left: run the same command again to resume", out)
            ready, _ = ray.wait(list(calls), num_returns=1, timeout=0.5) if calls else ([], [])
            if not ready:
                if not calls:
                    time.sleep(0.2)
                continue
            ref = ready[0]
            k, rel, p = calls.pop(ref)
            if rel is None:  # a probe: is the restarted worker (and its model) back?
                try:
                    ray.get(ref)
                except ActorDiedError as err:
                    log.warning("ray worker %d is gone for good: %s", k, _one_line(err))
                except (RayActorError, ObjectLostError):
                    waiting[k] = time.monotonic() + 0.5  # still restarting
                else:
                    log.info("ray worker %d is back", k)
                    idle.append(k)
                continue
            try:
                rec = ray.get(ref)
            except (RayActorError, ObjectLostError) as err:  # the worker (or its node) died while on this file
                attempts[rel] += 1
                deaths[k] += 1
                summary.worker_deaths += 1
                log.warning("ray worker %d died on %s (%s); %s", k, rel, _one_line(err),
                            "recorded as failed" if attempts[rel] >= RAY_FILE_ATTEMPTS else "queued again")
                if attempts[rel] >= RAY_FILE_ATTEMPTS:
                    take({"file": rel, "status": "error", "error_type": "WorkerDied",
                          "error": f"a Ray worker died {attempts[rel]} times while detecting this file", "seconds": 0.0})
                else:
                    pending.appendleft((rel, p))
                if deaths[k] <= RAY_ACTOR_RESTARTS:
                    waiting[k] = time.monotonic()  # Ray restarts it (and reloads its model): probe until it is back
            except RayTaskError as err:  # _record never raises for a file: this is a bug, recorded as one
                log.error("ray task for %s raised: %s", rel, err)
                take({"file": rel, "status": "error", "error_type": "RayTaskError",
                      "error": f"internal error: {_one_line(err)}", "seconds": 0.0})
                idle.append(k)
            else:
                take(rec)
                idle.append(k)
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
        if started_here:
            ray.shutdown()
