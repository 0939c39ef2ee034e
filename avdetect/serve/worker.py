"""Model worker threads: each owns one loaded :class:`avdetect.api.Detector` and takes jobs from
the database queue one at a time, so concurrent requests wait in the queue instead of loading a
model each.

A job ends as ``done`` (report JSON and its HTML rendering stored together) or ``failed`` (the
one-line message the command line would print for the same file, with the file named as the
client named it). Nothing is kept only in memory: a worker that dies leaves its job ``running``
in the database, and the next start of the service queues it again.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from avdetect.errors import AVDetectError
from avdetect.serve.store import Job, JobStore

log = logging.getLogger(__name__)

# the HTML report draws with matplotlib's pyplot, which is not thread-safe
_HTML_LOCK = threading.Lock()


def client_message(err: AVDetectError, name: str) -> str:
    """``str(err)``, with the file named as the client named it (not the service's copy)."""
    return f"{name}: {err.message}" if err.path is not None else err.message


class DetectionWorker:
    """One thread, one model; :meth:`wake` after adding a job, :meth:`stop` to end."""

    def __init__(self, store: JobStore, detector, name: str = "worker-0", keep_uploads: bool = False,
                 poll_s: float = 2.0):
        self.store = store
        self.detector = detector
        self.name = name
        self.keep_uploads = keep_uploads
        self.poll_s = poll_s
        self.current: str | None = None  # id of the job being run
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"avdetect-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 0.0) -> str | None:
        """Ask the thread to stop after its current job; returns that job's id if it is still running
        after ``timeout`` seconds (the caller puts it back in the queue)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        return self.current if self._thread.is_alive() else None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        log.info("%s: ready (%s on %s)", self.name, self.detector.model.config.name, self.detector.device)
        try:
            self._serve_queue()
        except BaseException:  # the job database failed: this worker ends, /healthz says "degraded"
            log.exception("%s: stopped by an error of the job database", self.name)
            raise

    def _serve_queue(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self.current = job.id
            try:
                self.run(job)
            finally:
                self.current = None

    def run(self, job: Job) -> None:
        """Detect one claimed job and store its outcome."""
        from avdetect.report import to_html

        t0 = time.perf_counter()
        log.info("%s: job %s (%s) started, attempt %d", self.name, job.id, job.name, job.attempts)
        try:
            report = self.detector.detect(job.path, quiet=True)
            d = report.to_dict()
            d["file"] = job.name  # as the client named it (the provenance keeps the service's path)
            with _HTML_LOCK:
                html = to_html(d)
        except AVDetectError as err:
            message = client_message(err, job.name)
            log.info("%s: job %s failed: %s", self.name, job.id, message)
            ended = self.store.fail(job.id, type(err).__name__, message)
        except Exception as err:  # noqa: BLE001 - a bug must fail this job, not the worker; logged with traceback
            log.exception("%s: job %s (%s): internal error", self.name, job.id, job.name)
            ended = self.store.fail(job.id, type(err).__name__, f"{job.name}: internal error: {type(err).__name__}: {err}")
        else:
            ended = self.store.finish(job.id, d, html)
            if ended:
                log.info("%s: job %s done in %.2f s: %s p(fake)=%.3f", self.name, job.id, time.perf_counter() - t0,
                         d["verdict"], d["fake_probability"])
        if not ended:  # put back in the queue meanwhile (a shutdown): it runs again, its file is kept
            log.warning("%s: job %s was no longer running when it ended; outcome dropped", self.name, job.id)
        elif job.source == "upload" and not self.keep_uploads:
            self._remove_upload(Path(job.path).parent)

    def _remove_upload(self, folder: Path) -> None:
        import shutil

        if folder.parent != self.store.uploads or not folder.exists():
            return
        try:
            shutil.rmtree(folder)
        except OSError as err:  # the result is stored; a leftover file is tidied at the next start
            log.warning("%s: could not remove the upload %s: %s", self.name, folder, err)
