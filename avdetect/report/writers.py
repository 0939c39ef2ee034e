"""Report writers: JSON, WebVTT, CSV (and HTML, in :mod:`avdetect.report.html`).

Every writer takes the serialised report dict (a :class:`DetectionReport` is converted with
``to_dict()`` first) and returns text; :func:`write_reports` writes any of them to files.
"""
from __future__ import annotations

import contextlib
import csv as _csv
import errno
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from avdetect.errors import AVDetectError, ReportError
from avdetect.report.model import against
from avdetect.timegrid import format_timestamp

CSV_COLUMNS = ("file", "start_s", "end_s", "score", "modality", "visual_score", "audio_score")


def _as_dict(report) -> dict[str, Any]:
    return report.to_dict() if hasattr(report, "to_dict") else report


def to_json(report, indent: int | None = 1) -> str:
    """The report as JSON text (schema in ``detection_report.schema.json``)."""
    return json.dumps(_as_dict(report), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def to_vtt(report) -> str:
    """A WebVTT subtitle track: one cue per flagged segment, so the flags show while the video plays.

    Load it next to the video (``<track kind="subtitles" src="clip.vtt">``, or VLC/mpv's
    subtitle option). A NOTE block at the top carries the verdict and the file hash.
    """
    d = _as_dict(report)
    prov = d["provenance"]
    lines = ["WEBVTT", "",
             f"NOTE avdetect {prov['package_version']} / {prov['model_name']}: verdict {d['verdict']} "
             "p(fake)={} threshold {}; sha256 {}".format(*against(d["fake_probability"], d["threshold"]), prov["sha256"]), ""]
    for k, seg in enumerate(sorted(d["segments"], key=lambda s: s["start_s"]), start=1):
        parts = []
        if seg.get("visual_score") is not None:
            parts.append(f"visual {seg['visual_score']:.2f}")
        if seg.get("audio_score") is not None:
            parts.append(f"audio {seg['audio_score']:.2f}")
        lines += [f"flag-{k}", f"{format_timestamp(seg['start_s'])} --> {format_timestamp(seg['end_s'])}",
                  f"[avdetect] possible {seg['modality']} manipulation (score {seg['score']:.2f})"]
        if parts:  # an empty line would end the cue
            lines.append(", ".join(parts))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value) -> str:
    """A free-text CSV cell that a spreadsheet will not run as a formula: text starting with
    ``= + - @`` (or a tab / carriage return) gets a leading apostrophe (OWASP's advice for CSV
    injection); a file named ``=HYPERLINK(...).mp4`` is shown, not evaluated."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(report) -> str:
    """Flagged segments, one row each (times in seconds; free text guarded against formulas)."""
    d = _as_dict(report)
    buf = io.StringIO()
    w = _csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for seg in d["segments"]:
        w.writerow([_text_cell(d["file"]), f"{seg['start_s']:.3f}", f"{seg['end_s']:.3f}", f"{seg['score']:.4f}",
                    _text_cell(seg["modality"]),
                    "" if seg.get("visual_score") is None else f"{seg['visual_score']:.4f}",
                    "" if seg.get("audio_score") is None else f"{seg['audio_score']:.4f}"])
    return buf.getvalue()


def to_html(report) -> str:
    """One self-contained HTML page (see :mod:`avdetect.report.html`)."""
    from avdetect.report.html import render_html

    return render_html(_as_dict(report))


_UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def path_kind(path: str | Path) -> str | None:
    """What is at ``path``, symbolic links followed: None when nothing is there, ``"file"`` for a
    regular file, else its kind in words (``"a folder"``, ``"a character device"``, ``"a named
    pipe (FIFO)"``, ...). Only ``stat`` is called: nothing is opened, so a device or a FIFO is
    neither read nor blocked on. An :class:`OSError` other than "not there" (a symbolic link
    loop, permission denied) propagates."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return "file"
    return next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")


def os_reason(err: OSError) -> str:
    """An OSError's reason in a few words (a symbolic link loop named as such)."""
    if err.errno == errno.ELOOP:
        return "a symbolic link loop (ELOOP: too many levels of symbolic links)"
    return err.strerror or str(err)


def refuse_special_file(path: str | Path, label: str = "", error: type[AVDetectError] = ReportError) -> None:
    """Raise ``error`` when a file target exists and is not a regular file: a folder, a device
    (``/dev/full``, ``/dev/zero``), a named pipe or a socket would swallow the output, block, fill
    memory when read back, or be replaced by a rename. ``label`` (e.g. ``"--json"``) starts the
    message."""
    p = Path(path)
    label = f"{label} " if label else ""
    try:
        kind = path_kind(p)
    except OSError as err:
        raise error(f"{label}cannot be used as an output ({os_reason(err)})", p) from None
    if kind == "a folder":
        raise error(f"{label}is a folder; give a file name", p)
    if kind not in (None, "file"):
        raise error(f"{label}is {kind}, not a regular file; give a file name", p)


def check_target(path: str | Path, *, folder: bool = False, label: str = "",
                 error: type[AVDetectError] = ReportError) -> Path:
    """Fail at once (before any work is done for it) when an output cannot be written to ``path``:
    a file target (``folder=False``) that exists and is not a regular file (a folder, a device
    such as ``/dev/full``, a named pipe, a socket), a folder target (``folder=True``) that is not
    a folder, a folder above that is a file, or a folder in which this process cannot create
    files (read-only mount, ``/proc``, no permission). Creates the missing folders. Raises
    ``error`` (one line naming the path; ``label``, e.g. ``"--json"``, starts the message);
    returns ``path`` as a :class:`Path`."""
    p = Path(path)
    if not folder:
        refuse_special_file(p, label, error)
    label = f"{label} " if label else ""
    where = p if folder else p.parent
    for q in [where, *where.parents]:  # the nearest thing that exists must be a folder
        try:
            kind = path_kind(q)
        except OSError as err:
            raise error(f"{label}cannot be used as an output ({q}: {os_reason(err)})", p) from None
        if kind is not None:
            if kind != "a folder":
                raise error(f"{label}cannot be created: {q} is {'a file' if kind == 'file' else kind}, not a folder", p)
            break
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".avdetect-write-check-"):
            pass
    except OSError as err:
        raise error(f"{label}cannot create files in this folder ({os_reason(err)})", where) from None
    return p


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` all or nothing: into a temporary file in the same
    folder, flushed to disk, then renamed over ``path``. A full disk, a size limit or a kill
    leaves the previous file (or none) and no partial one; the failure is a one-line
    :class:`~avdetect.errors.ReportError`. A ``path`` that exists and is not a regular file (a
    folder, ``/dev/full``, a named pipe) is refused: nothing is written there."""
    p = Path(path)
    refuse_special_file(p)  # never rename over a device, a FIFO or a socket
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".part")
    except OSError as err:
        raise ReportError(f"cannot write the report ({err.strerror or err})", p) from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # as an ordinary file would be (mkstemp makes it 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ReportError(f"cannot write the report ({err.strerror or err}); nothing was written", p) from None
    return p


def write_reports(report, json: str | Path | None = None, html: str | Path | None = None,
                  vtt: str | Path | None = None, csv: str | Path | None = None) -> dict[str, Path]:
    """Write the requested formats, each atomically (:func:`write_atomic`); returns
    ``{format: path}`` of what was written."""
    d = _as_dict(report)
    written: dict[str, Path] = {}
    for name, target, fn in (("json", json, to_json), ("html", html, to_html), ("vtt", vtt, to_vtt), ("csv", csv, to_csv)):
        if target is None:
            continue
        written[name] = write_atomic(target, fn(d))
    return written
