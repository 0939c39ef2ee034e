"""The service without its HTTP layer: the job store, the model workers, and submitting files.

:class:`Service` is what :func:`avdetect.serve.app.create_app` wraps; it needs no web framework,
so it can be driven (and tested) directly. Creating one opens (and migrates) the database, takes
its lock, queues again what a crash left running, and loads one model per worker, so that every
start-up problem (a missing checkpoint, a database in use) is raised before anything listens.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from avdetect.errors import AVDetectError, ConfigError
from avdetect.serve.config import ServeConfig
from avdetect.serve.store import Job, JobStore
from avdetect.serve.worker import DetectionWorker

log = logging.getLogger(__name__)


class PathRefused(AVDetectError):
    """A path submission the service will not read (outside the media root, or paths are off)."""


def _renamed(err: AVDetectError, name: str) -> AVDetectError:
    """The same error, naming the file as the client named it."""
    if err.path is None:
        return err
    return type(err)(err.message, name)


class Service:
    """Job store + model workers; see the module docstring."""

    def __init__(self, config: ServeConfig, detectors: list | None = None):
        self.config = config
        self.token = config.resolve_token()
        self.store = JobStore(config.db)
        try:
            requeued, failed = self.store.recover(config.max_interruptions)
            removed = self.store.tidy_uploads(keep_finished=config.keep_uploads)
            if requeued or failed or removed:
                log.warning("recovered after an unclean stop: %d jobs queued again, %d failed for good, "
                            "%d stray uploads removed", len(requeued), len(failed), removed)
            if detectors is None:
                detectors = [self._load_detector() for _ in range(config.workers)]
        except BaseException:
            self.store.close()
            raise
        self.workers = [DetectionWorker(self.store, det, name=f"worker-{k}", keep_uploads=config.keep_uploads)
                        for k, det in enumerate(detectors)]
        self.started_s = time.time()
        self.model_name = detectors[0].model.config.name
        self.device = str(detectors[0].device)
        self.checkpoint = detectors[0].checkpoint

    def _load_detector(self):
        from avdetect.api import Detector

        t0 = time.perf_counter()
        det = Detector.from_pretrained(self.config.checkpoint, device=self.config.device, **self.config.options)
        log.info("model %s loaded from %s on %s in %.1f s", det.model.config.name, det.checkpoint, det.device,
                 time.perf_counter() - t0)
        return det

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        for w in self.workers:
            w.start()
        self.wake()

    def wake(self) -> None:
        for w in self.workers:
            w.wake()

    def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop the workers; a job still running after ``grace_s`` goes back to the queue."""
        deadline = time.monotonic() + grace_s
        still = []
        for w in self.workers:
            job_id = w.stop(timeout=max(0.0, deadline - time.monotonic()))
            if job_id is not None:
                still.append(job_id)
            elif w.alive:
                still.append(None)
        for job_id in still:
            if job_id is not None and self.store.requeue(job_id):
                log.warning("job %s interrupted by the shutdown: queued again for the next start", job_id)
        if not any(w.alive for w in self.workers):
            self.store.close()

    def healthy(self) -> bool:
        return all(w.alive for w in self.workers)

    # -- submitting ---------------------------------------------------------------------------
    def _inspect(self, path: Path, name: str):
        """Read the file's container as ``detect`` will (the same checks, the same messages) and
        apply the duration limit. Raises the typed error, naming the file as the client did."""
        from avdetect.media import inspect_media

        max_side = self.config.options.get("max_side")
        kwargs = {"max_side": max_side} if max_side else {}
        try:
            return inspect_media(path, max_duration=self.config.max_duration_s, **kwargs)
        except AVDetectError as err:
            raise _renamed(err, name) from None

    def submit_upload(self, job_id: str, name: str, path: Path, size_bytes: int) -> Job:
        """Accept a file already written to its job folder (removed again when it is refused)."""
        import shutil

        try:
            info = self._inspect(path, name)
        except BaseException:
            shutil.rmtree(path.parent)
            raise
        job = self.store.add(job_id, "upload", name, path, size_bytes, round(float(info.duration), 4))
        log.info("job %s accepted: upload %s (%d bytes, %.1f s)", job_id, name, size_bytes, info.duration)
        self.wake()
        return job

    def resolve_media_path(self, given: str) -> Path:
        root = self.config.media_root
        if root is None:
            raise PathRefused("submitting files by path is off: start the service with --media-root DIR")
        if not isinstance(given, str) or not given.strip() or "\x00" in given:
            raise ConfigError("'path' must be a non-empty string")
        p = Path(given)
        candidate = (p if p.is_absolute() else root / p).resolve()
        if not candidate.is_relative_to(root):
            raise PathRefused("outside the media root; only files under it may be submitted by path", given)
        return candidate

    def submit_path(self, given: str) -> Job:
        path = self.resolve_media_path(given)
        info = self._inspect(path, given)
        job = self.store.add(self.store.new_id(), "path", given, path, int(info.size_bytes), round(float(info.duration), 4))
        log.info("job %s accepted: %s (%.1f s)", job.id, path, info.duration)
        self.wake()
        return job
