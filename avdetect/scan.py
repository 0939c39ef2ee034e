"""Scan a folder of media files into an append-only, resumable JSON-lines results file.

    summary = scan("corpus/", "results.jsonl", workers=2)

Each file gets exactly one line, written (and flushed to disk) as soon as it is done:
``{"file": <path relative to the folder>, "status": "ok", "verdict": ..., "fake_probability": ...,
"segments": [[start_s, end_s, score, modality], ...], "report": {...}}`` or, when it failed,
``{"file": ..., "status": "error", "error_type": ..., "error": <one line>}``. One failure never
stops the scan. Running the same scan again skips every file that already has a line (failed
ones too, unless ``retry_failed``), so a scan killed at any point resumes without redoing or
losing work; a line cut short by the kill is ignored (and its file redone).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avdetect.errors import AVDetectError, ConfigError, ScanError

log = logging.getLogger(__name__)

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
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "file: error" of this run

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def find_media(directory: str | Path) -> list[Path]:
    """Media files under ``directory`` (recursive, by extension), sorted."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError("not a folder", root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)


def read_results(out: str | Path) -> dict[str, dict]:
    """``{file: record}`` of the complete lines of a results file (later lines win)."""
    p = Path(out)
    records: dict[str, dict] = {}
    if not p.exists():
        return records
    with p.open("r", encoding="utf-8") as fh:
        for k, line in enumerate(fh, start=1):
            if not line.endswith("\n"):
                log.warning("%s: line %d is incomplete (interrupted write); its file will be redone", p, k)
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
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


def _worker_run(rel: str, path: str) -> dict:
    return _record(rel, Path(path), _WORKER_DETECTOR)


class _Writer:
    """Appends one JSON line per record, flushed and synced, after repairing a cut last line."""

    def __init__(self, out: Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = out.exists() and out.stat().st_size > 0 and not out.read_bytes()[-1:] == b"\n"
        self.fh = out.open("a", encoding="utf-8")
        if needs_newline:  # a line cut by a kill: end it, so the next record starts clean
            self.fh.write("\n")

    def write(self, rec: dict) -> None:
        self.fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def scan(directory: str | Path, out: str | Path, workers: int = 1, checkpoint: str | Path | None = None,
         device: str | None = None, retry_failed: bool = False, quiet: bool = True, detector=None,
         **options) -> ScanSummary:
    """Detect every media file under ``directory`` into ``out`` (JSON lines); see module docstring.

    ``workers > 1`` runs that many processes, each with its own model (one thread each).
    ``detector``: an already loaded :class:`avdetect.api.Detector` (single process only).
    """
    t_start = time.perf_counter()
    root = Path(directory)
    files = find_media(root)
    out = Path(out)
    previous = read_results(out)
    summary = ScanSummary(out=str(out), found=len(files))
    todo: list[tuple[str, Path]] = []
    for p in files:
        rel = p.relative_to(root).as_posix()
        rec = previous.get(rel)
        if rec is not None and (rec.get("status") == "ok" or not retry_failed):
            summary.skipped += 1
            continue
        todo.append((rel, p))
    log.info("scan %s: %d files, %d already done, %d to do", root, len(files), summary.skipped, len(todo))
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
        if workers <= 1 or len(todo) <= 1:
            if detector is None and todo:
                from avdetect.api import Detector

                detector = Detector.from_pretrained(checkpoint, device=device, **options)
            for rel, p in todo:
                take(_record(rel, p, detector))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from concurrent.futures.process import BrokenProcessPool

            if detector is not None:
                raise ConfigError("a loaded detector can only be used with workers=1")
            from avdetect.checkpoints import resolve_checkpoint

            resolve_checkpoint(checkpoint)  # a missing checkpoint: one clear error, not N broken workers
            ctx = mp.get_context("spawn")
            ckpt = None if checkpoint is None else str(checkpoint)
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(ckpt, device, options, 1)) as pool:
                futures = [pool.submit(_worker_run, rel, str(p)) for rel, p in todo]
                try:
                    for fut in as_completed(futures):
                        take(fut.result())
                except BrokenProcessPool as err:
                    # which file killed the worker is unknown: stop, keep every line written so far
                    raise ScanError(f"a worker process died ({err}); {summary.done} results were written, "
                                    f"{len(todo) - summary.done} files are left: run the same command again to "
                                    "resume (or with --workers 1 to find the file that crashes)", out) from None
    finally:
        bar.close()
        writer.close()
        summary.seconds = round(time.perf_counter() - t_start, 3)
    return summary
