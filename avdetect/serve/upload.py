"""Receive a ``multipart/form-data`` upload straight into the job's folder, within a size limit.

The body is parsed as it arrives (python-multipart's streaming parser) and the file part is
written to disk in ~1 MiB batches from a worker thread, so an upload of any size costs a few
MiB of memory, never a temporary copy; the size limit is checked on the bytes received, so a
client that lies about (or omits) ``Content-Length`` is cut off at the limit too.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

FIELD_LIMIT = 4096  # bytes of a non-file form field
FRAMING_ALLOWANCE = 64 * 1024  # multipart boundaries and part headers on top of the file itself
BATCH = 1 << 20


class UploadRejected(Exception):
    """The upload cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def safe_name(name: str) -> str:
    """A file name safe to create in the job folder (the extension kept, for ffmpeg's sake)."""
    base = re.split(r"[\\/]", name)[-1].strip()
    base = re.sub(r"[^\w.\-]+", "_", base, flags=re.ASCII).lstrip(".")
    return base[-120:] or "upload"


@dataclass
class ReceivedUpload:
    name: str | None = None  # the file name as the client sent it
    path: Path | None = None  # where it was written
    size_bytes: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def _limit_text(n: int) -> str:
    return f"{n} bytes ({n / 2**20:.1f} MiB)" if n >= 2**20 else f"{n} bytes"


async def receive_upload(headers, chunks: AsyncIterator[bytes], folder: Path, max_bytes: int,
                         field_name: str = "file") -> ReceivedUpload:
    """Parse a multipart body from ``chunks`` and write its ``field_name`` file part into ``folder``.

    Raises :class:`UploadRejected` (413 over ``max_bytes``, 400 for a malformed body or a missing
    file part, 415 for another content type). On error the partial file is removed.
    """
    from anyio import to_thread
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise UploadRejected(415, "send the file as multipart/form-data (a 'file' field), or JSON {\"path\": ...}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadRejected(400, "multipart body without a boundary")
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes + FRAMING_ALLOWANCE:
        raise UploadRejected(413, f"upload of {int(length)} bytes exceeds the limit of {_limit_text(max_bytes)}")

    out = ReceivedUpload()
    part: dict = {}
    pending: list[bytes] = []

    def on_part_begin():
        part.clear()
        part.update(headers={}, hname=b"", hvalue=b"", name=None, filename=None, data=bytearray(), fh=None)

    def on_header_field(data, start, end):
        part["hname"] += data[start:end]

    def on_header_value(data, start, end):
        part["hvalue"] += data[start:end]

    def on_header_end():
        part["headers"][part["hname"].lower()] = part["hvalue"]
        part["hname"], part["hvalue"] = b"", b""

    def on_headers_finished():
        _disp, opts = parse_options_header(part["headers"].get(b"content-disposition", b""))
        part["name"] = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        if filename is None:
            return
        if part["name"] != field_name or out.path is not None:
            raise UploadRejected(400, f"send exactly one file, in the form field {field_name!r}")
        out.name = filename.decode("utf-8", "replace")
        out.path = folder / safe_name(out.name)
        part["fh"] = open(out.path, "wb")

    def on_part_data(data, start, end):
        if part["fh"] is not None:
            out.size_bytes += end - start
            if out.size_bytes > max_bytes:
                raise UploadRejected(413, f"{out.name}: upload exceeds the limit of {_limit_text(max_bytes)}")
            part["fh"].write(data[start:end])
        else:
            part["data"] += data[start:end]
            if len(part["data"]) > FIELD_LIMIT:
                raise UploadRejected(400, f"form field {part['name']!r} is longer than {FIELD_LIMIT} bytes")

    def on_part_end():
        fh = part.get("fh")
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the job is accepted
            fh.close()
            part["fh"] = None
        elif part.get("name"):
            out.fields[part["name"]] = part["data"].decode("utf-8", "replace")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    })

    def feed(batch: bytes) -> None:
        parser.write(batch)

    folder.mkdir(parents=True, exist_ok=True)
    received = batched = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes + FRAMING_ALLOWANCE:
                named = f"{out.name}: " if out.name else ""
                raise UploadRejected(413, f"{named}upload exceeds the limit of {_limit_text(max_bytes)}")
            pending.append(chunk)
            batched += len(chunk)
            if batched >= BATCH:
                batch, pending[:], batched = b"".join(pending), [], 0
                await to_thread.run_sync(feed, batch)
        if pending:
            await to_thread.run_sync(feed, b"".join(pending))
        parser.finalize()
    except MultipartParseError as err:
        _discard(part, folder)
        raise UploadRejected(400, f"malformed multipart body: {err}") from None
    except BaseException:
        _discard(part, folder)
        raise
    if part.get("fh") is not None:  # the body ended inside the file part
        _discard(part, folder)
        raise UploadRejected(400, "the upload ended before the file did (connection cut?)")
    if out.path is None:
        _discard(part, folder)
        raise UploadRejected(400, f"no file in the upload: send it in the form field {field_name!r}")
    return out


def _discard(part: dict, folder: Path) -> None:
    import shutil

    fh = part.get("fh")
    if fh is not None:
        fh.close()
        part["fh"] = None
    if folder.exists():
        shutil.rmtree(folder)
