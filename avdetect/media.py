"""Media decoding: any audio or video file -> frames on the 25 fps grid + mono 16 kHz audio.

``load_media(path)`` inspects a file and returns a :class:`Media`. Inspection is cheap and
never decodes pixels: one ``ffmpeg -i`` for the container and stream descriptions, and one
stream-copy pass (``-c copy -f framecrc``) that lists every packet's timestamps. The packet
list gives exact stream start/end times, frame counts, variable-frame-rate detection and
truncation (a header that promises more than the data holds) without trusting headers.

Decoding happens only when frames or audio are asked for, in a streamed way:

* ``media.iter_frames()`` / ``media.iter_windows(n)`` run one ffmpeg process that resamples
  the video onto the constant 25 fps grid (``fps`` filter: variable-frame-rate input included),
  scales it to the working size at decode time and pipes raw RGB. Exactly ``media.n_frames``
  frames come out (a short tail is padded with the last frame, an over-long one cut), and only
  one window is in memory at a time, so a 1-hour video needs no more memory than a 10-second one.
* ``media.audio`` decodes the first audio stream to mono float32 at 16 kHz (all of it, cached);
  ``media.read_audio(start_s, stop_s)`` decodes a span without holding the rest.

Time origin: ``t = 0`` is the start of the container; a stream that starts later is padded
at its start (first frame repeated, silence for audio), so that frame ``i`` of the video and
samples ``[640 i, 640 (i + 1))`` of the audio always cover the same 40 ms.

Every ffmpeg process runs with ``-nostdin``, a time limit (inspection) or a stall limit
(decoding: no data for ``stall_timeout`` seconds -> killed, :class:`MediaTimeoutError`), and
is killed when the caller stops iterating early.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import queue
import re
import select
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from avdetect._process import child_env, enlarge_pipe
from avdetect._threads import BackgroundCall
from avdetect.errors import (
    AVDetectError,
    CorruptMediaError,
    MediaError,
    MediaNotFoundError,
    MediaTimeoutError,
    MediaTooLargeError,
    NoStreamsError,
    NotMediaError,
    UnsupportedStreamError,
)
from avdetect.timegrid import (FPS, SAMPLE_RATE, frames_to_seconds, n_frames_for_duration, n_samples_for_duration,
                               samples_to_seconds)
from avdetect.vocab import DECODE_MAX_SIDE

log = logging.getLogger(__name__)

#: Seconds without any decoder output before a decoding ffmpeg is declared hung and killed.
DEFAULT_STALL_TIMEOUT = 60.0

@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``$AVDETECT_FFMPEG``, else the one shipped by imageio-ffmpeg."""
    env = os.environ.get("AVDETECT_FFMPEG")
    if env:
        return env
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# ---------------------------------------------------------------------------------------
# facts
@dataclass(frozen=True)
class StreamInfo:
    """One stream as declared by the container and as measured from its packets."""

    index: int  # ffmpeg's input stream index (0:index)
    kind: str  # "video" | "audio"
    codec: str
    description: str  # ffmpeg's own one-line description, for provenance
    start: float = 0.0  # seconds from the container start to the first packet (measured; >= 0)
    end: float = 0.0  # seconds from the container start to the end of the last packet (measured)
    n_packets: int = 0
    # video
    width: int = 0
    height: int = 0
    fps: float = 0.0  # declared frame rate (0 if unknown)
    rotation: int = 0  # display rotation in degrees (autorotated at decode)
    sar: float = 1.0  # sample aspect ratio
    variable_frame_rate: bool = False
    # audio
    sample_rate: int = 0
    channels: int = 0

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class MediaInfo:
    """Facts about a media file (all times in seconds)."""

    path: str
    size_bytes: int
    container: str
    duration: float
    has_video: bool
    has_audio: bool
    n_frames: int  # frames on the 25 fps grid (0 without video)
    n_samples: int  # audio samples at 16 kHz, mono (0 without audio)
    working_size: tuple[int, int]  # (width, height) of decoded frames; (0, 0) without video
    source_fps: float
    source_size: tuple[int, int]  # (width, height) as displayed (rotation applied)
    video_codec: str | None
    audio_codec: str | None
    source_sample_rate: int
    source_channels: int
    variable_frame_rate: bool
    bitrate_kbps: float | None
    tags: dict = field(default_factory=dict)
    streams: list[StreamInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["working_size"] = list(self.working_size)
        d["source_size"] = list(self.source_size)
        return d


# ---------------------------------------------------------------------------------------
# ffmpeg -i parsing
_DURATION_RE = re.compile(r"Duration:\s*(?P<d>[\d:.]+|N/A)(?:,\s*start:\s*(?P<s>-?[\d.]+))?(?:,\s*bitrate:\s*(?P<b>[\d.]+)\s*kb/s)?")
_INPUT_RE = re.compile(r"^Input #0, (?P<fmt>[^,]+(?:,[^ ]+)*), from ")
_STREAM_RE = re.compile(r"^\s*Stream #0:(?P<idx>\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (?P<kind>Video|Audio|Subtitle|Data|Attachment): (?P<rest>.*)$")
_SIZE_RE = re.compile(r"(?:^|[ ,])(?P<w>\d{1,5})x(?P<h>\d{1,5})(?:[ ,]|$)")
_FPS_RE = re.compile(r"(?P<fps>[\d.]+k?) fps")
_TBR_RE = re.compile(r"(?P<tbr>[\d.]+k?) tbr")
_SAR_RE = re.compile(r"SAR (?P<n>\d+):(?P<d>\d+)")
_HZ_RE = re.compile(r"(?P<hz>\d+) Hz")
_ROT_RE = re.compile(r"rotation of (?P<deg>-?[\d.]+) degrees")
_TAG_RE = re.compile(r"^\s{4}(?P<key>[A-Za-z_][\w.-]*)\s*: (?P<val>.*)$")
_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "4.1": 5, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _parse_rate(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def _parse_hms(text: str) -> float | None:
    if text == "N/A":
        return None
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass
class _Header:
    container: str = ""
    duration: float | None = None
    start: float = 0.0
    bitrate: float | None = None
    tags: dict = field(default_factory=dict)
    streams: dict = field(default_factory=dict)  # index -> dict of declared facts


def _parse_header(stderr: str) -> _Header:
    head = _Header()
    current: dict | None = None
    in_container_meta = False
    for line in stderr.splitlines():
        m = _INPUT_RE.match(line)
        if m:
            head.container = m.group("fmt")
            in_container_meta = True
            continue
        m = _DURATION_RE.search(line)
        if m and line.lstrip().startswith("Duration"):
            head.duration = _parse_hms(m.group("d"))
            head.start = float(m.group("s") or 0.0)
            head.bitrate = float(m.group("b")) if m.group("b") else None
            in_container_meta = False
            continue
        m = _STREAM_RE.match(line)
        if m:
            in_container_meta = False
            rest = m.group("rest")
            kind = m.group("kind").lower()
            codec = rest.split(",")[0].split(" ")[0].strip()
            st = {"index": int(m.group("idx")), "kind": kind, "codec": codec, "description": rest.strip()}
            if kind == "video":
                sm = _SIZE_RE.search(rest)
                if sm:
                    st["width"], st["height"] = int(sm.group("w")), int(sm.group("h"))
                fm = _FPS_RE.search(rest) or _TBR_RE.search(rest)
                if fm:
                    st["fps"] = _parse_rate(fm.groups()[0])
                sar = _SAR_RE.search(rest)
                if sar and int(sar.group("d")) > 0 and int(sar.group("n")) > 0:
                    st["sar"] = int(sar.group("n")) / int(sar.group("d"))
                st["attached_pic"] = "(attached pic)" in rest
            elif kind == "audio":
                hm = _HZ_RE.search(rest)
                if hm:
                    st["sample_rate"] = int(hm.group("hz"))
                parts = [p.strip() for p in rest.split(",")]
                for p in parts:
                    name = p.split("(")[0].strip()
                    if name in _CHANNELS:
                        st["channels"] = _CHANNELS[name]
                        break
                    cm = re.match(r"(\d+) channels", p)
                    if cm:
                        st["channels"] = int(cm.group(1))
                        break
            head.streams[st["index"]] = st
            current = st
            continue
        m = _ROT_RE.search(line)
        if m and current is not None and current.get("kind") == "video":
            current["rotation"] = int(round(float(m.group("deg")))) % 360
            continue
        if in_container_meta:
            tm = _TAG_RE.match(line)
            if tm and tm.group("key") != "Metadata":
                head.tags[tm.group("key")] = tm.group("val").strip()
    return head


# ---------------------------------------------------------------------------------------
# subprocess helpers
def _run(cmd: list[str], path: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=child_env())
    except subprocess.TimeoutExpired as err:
        raise MediaTimeoutError(f"ffmpeg did not finish inspecting the file within {timeout:.0f} s", path) from err
    except OSError as err:
        raise MediaError(f"cannot run ffmpeg ({ffmpeg_exe()}): {err}", path) from err


def _inspect_timeout(size_bytes: int) -> float:
    return 60.0 + size_bytes / 20e6  # generous: 20 MB/s of reading on a slow disk


_CORRUPT_HINTS = ("moov atom not found", "partial file", "truncat", "corrupt", "invalid nal", "error while decoding", "could not find codec parameters", "end of file")


_ADDRESS_RE = re.compile(r"\[([^\]@]*?)\s*@\s*0x[0-9a-fA-F]+\]")


def ffmpeg_lines(text: str) -> list[str]:
    """ffmpeg's log as stripped, non-empty lines with its memory addresses removed
    (``[h264 @ 0x55d0c3a1b2c0] ...`` -> ``[h264] ...``), so that messages built from them are the
    same from one run to the next."""
    return [_ADDRESS_RE.sub(r"[\1]", ln.strip()) for ln in text.splitlines() if ln.strip()]


def _classify_open_error(stderr: str, path: str) -> MediaError:
    """ffmpeg could not open the input: say why in one line."""
    lines = ffmpeg_lines(stderr)
    low = stderr.lower()
    detail = next((ln for ln in reversed(lines) if "Invalid data" in ln or "Error" in ln or "error" in ln), lines[-1] if lines else "")
    detail = re.sub(r"^\[[^\]]+\]\s*", "", detail)
    detail = detail.replace(path, "").strip(" :")
    if "detected only with low score" in low:
        # ffmpeg guessed a container from the name or a weak signature: the content is not media
        return NotMediaError("not an audio or video file (the content matches no known format)", path)
    if any(h in low for h in _CORRUPT_HINTS):
        return CorruptMediaError(f"corrupt or truncated media file ({detail})", path)
    if "permission denied" in low:
        return MediaError("permission denied", path)
    return NotMediaError(f"not an audio or video file that can be decoded ({detail or 'unrecognised format'})", path)


_TB_RE = re.compile(r"^#tb (?P<i>\d+): (?P<n>\d+)/(?P<d>\d+)")
#: How audio is turned into mono 16 kHz (decoding and inspection use the same arguments).
#: ``first_pts=0`` pads a late-starting stream with silence so that t=0 is the container start.
_AUDIO_FILTER = "aresample=async=1:first_pts=0"
_AUDIO_FILTER_ARGS = ["-af", _AUDIO_FILTER, "-ac", "1", "-ar", str(SAMPLE_RATE)]


def _scan_streams(path: str, video_index: int | None, audio_index: int | None, timeout: float) -> tuple[dict, list[str]]:
    """Measure the chosen streams in one read of the file.

    Video is stream-copied (no pixel decoding): its packet timestamps give the frame count,
    end time and frame-rate regularity. Audio is decoded and resampled exactly as
    :meth:`Media.audio` does it, so the measured sample count is the one decoding yields
    (packet timestamps of MP3/AAC are off by encoder delay and padding).

    Returns ({input_index: {start, end, n_packets, vfr}}, error_lines). Times are seconds from
    the container start (ffmpeg shifts its output by the input's start time, so they are
    relative already). The audio's start is its first packet's, from a stream copy beside the
    decoded one: decoding pads a late start with silence, so the decoded audio always starts at 0.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", path]
    outputs: list[tuple[int, str]] = []  # (input stream index, what the output stream is for)
    if video_index is not None:
        cmd += ["-map", f"0:{video_index}", "-c:v", "copy"]
        outputs.append((video_index, "video"))
    if audio_index is not None:
        cmd += ["-map", f"0:{audio_index}", "-filter:a:0", _AUDIO_FILTER, "-ac:a:0", "1", "-ar:a:0", str(SAMPLE_RATE),
                "-c:a:0", "pcm_f32le", "-map", f"0:{audio_index}", "-c:a:1", "copy"]
        outputs += [(audio_index, "audio"), (audio_index, "audio_packets")]
    cmd += ["-f", "framecrc", "-"]
    proc = _run(cmd, path, timeout)
    out = proc.stdout.decode("utf-8", "replace")
    timebase: dict[int, float] = {}
    pts: dict[int, list[int]] = {k: [] for k in range(len(outputs))}
    durs: dict[int, list[int]] = {k: [] for k in range(len(outputs))}
    for line in out.splitlines():
        if line.startswith("#"):
            m = _TB_RE.match(line)
            if m:
                timebase[int(m.group("i"))] = int(m.group("n")) / int(m.group("d"))
            continue
        parts = line.split(",")
        if len(parts) < 5:
            continue
        try:
            k, p, d = int(parts[0]), int(parts[2]), int(parts[3])
        except ValueError:
            continue
        if k in pts:
            pts[k].append(p)
            durs[k].append(d)
    result: dict[int, dict] = {}
    for k, (inp, role) in enumerate(outputs):
        if not pts[k]:
            continue
        tb = timebase.get(k, 1.0)
        if role == "audio_packets":
            if inp in result:  # the decoded audio is what counts; its packets only say where it starts
                result[inp]["start"] = max(0.0, float(min(pts[k]) * tb))
            continue
        p = np.asarray(pts[k], dtype=np.int64)
        d = np.asarray(durs[k], dtype=np.int64)
        srt = np.argsort(p, kind="stable")
        p, d = p[srt], d[srt]
        last_dur = d[-1] if d[-1] > 0 else (np.median(np.diff(p)) if len(p) > 1 else 0)
        vfr = False
        if role == "video" and len(p) > 2:
            deltas = np.diff(p)
            deltas = deltas[deltas > 0]
            if len(deltas) > 1:
                med = np.median(deltas)
                vfr = bool(np.mean(np.abs(deltas - med) > 0.1 * med) > 0.05)
        start = float(p[0] * tb) if role == "video" else 0.0
        result[inp] = {"start": start, "end": float((p[-1] + last_dur) * tb), "n_packets": int(len(p)), "vfr": vfr}
    errors = ffmpeg_lines(proc.stderr.decode("utf-8", "replace"))
    return result, errors


#: Audio and video whose first packets are further apart than this (seconds) get a warning:
#: encoders leave tens of milliseconds; a late stream is padded (silence, or the first frame).
STREAM_START_TOLERANCE_S = 0.5


def stream_start_gap(info) -> float | None:
    """Seconds by which the audio stream starts after the video stream (negative: the video starts
    later), from their first packets; None unless the file has both. ``info``: a
    :class:`MediaInfo` or a :class:`Media`."""
    v = next((s for s in info.streams if s.kind == "video"), None)
    a = next((s for s in info.streams if s.kind == "audio"), None)
    return None if v is None or a is None else a.start - v.start


def stream_start_warning(info) -> str | None:
    """A warning when the audio and video start more than :data:`STREAM_START_TOLERANCE_S` apart
    (the later stream is padded at its start, so the two cannot be compared there); else None."""
    gap = stream_start_gap(info)
    if gap is None or abs(gap) <= STREAM_START_TOLERANCE_S:
        return None
    late, early, pad = ("audio", "video", "silence") if gap > 0 else ("video", "audio", "its first frame repeated")
    return (f"the {late} starts {abs(gap):.2f} s after the {early}: its first {abs(gap):.2f} s are {pad}, so "
            "audio-visual sync cannot be judged there")


def _working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _regular_file_size(path: str) -> int:
    """The size of the regular file at ``path`` (symbolic links followed), or a one-line
    :class:`MediaError` saying what is there instead: nothing, a dangling or looping symbolic
    link, a folder, a named pipe (never opened: that would block), a device. Only ``stat``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise MediaNotFoundError(f"no such file: a dangling symbolic link (to {os.readlink(path)})", path) from None
        raise MediaNotFoundError("no such file", path) from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise MediaNotFoundError("a symbolic link loop (ELOOP: too many levels of symbolic links)", path) from None
        if isinstance(err, PermissionError):
            raise MediaError("permission denied", path) from None
        raise MediaNotFoundError(f"cannot be read ({err.strerror or err})", path) from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a regular file")
        raise MediaNotFoundError(f"not a regular file ({kind})", path)
    return st.st_size


# ---------------------------------------------------------------------------------------
def inspect_media(path: str | os.PathLike, max_side: int = DECODE_MAX_SIDE, max_duration: float | None = None) -> MediaInfo:
    """Read the facts of a media file without decoding it. Raises a :class:`MediaError` subclass."""
    p = Path(path)
    spath = str(p)
    size = _regular_file_size(spath)
    if size == 0:
        raise NotMediaError("empty file (0 bytes)", spath)
    if not os.access(spath, os.R_OK):
        raise MediaError("permission denied", spath)
    timeout = _inspect_timeout(size)
    proc = _run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", spath], spath, timeout)
    stderr = proc.stderr.decode("utf-8", "replace")
    head = _parse_header(stderr)
    if not head.container:
        raise _classify_open_error(stderr, spath)

    declared = head.streams
    video_decl = next((s for s in declared.values() if s["kind"] == "video" and not s.get("attached_pic")), None)
    audio_decl = next((s for s in declared.values() if s["kind"] == "audio"), None)
    warnings: list[str] = []
    for s in (video_decl, audio_decl):
        if s is not None and (s["codec"] in ("none", "unknown") or "Unsupported" in s["description"]):
            raise UnsupportedStreamError(f"{s['kind']} stream #{s['index']} uses a codec that cannot be decoded ({s['description']})", spath)
    if video_decl is None and audio_decl is None:
        kinds = sorted({s["kind"] for s in declared.values()}) or ["none"]
        raise NoStreamsError(f"no video or audio stream (streams found: {', '.join(kinds)})", spath)

    indices = [s["index"] for s in (video_decl, audio_decl) if s is not None]
    measured, scan_errors = _scan_streams(
        spath, video_decl["index"] if video_decl else None, audio_decl["index"] if audio_decl else None, timeout
    )
    streams: list[StreamInfo] = []
    for s in (video_decl, audio_decl):
        if s is None:
            continue
        m = measured.get(s["index"])
        if m is None:
            if len(indices) == 1:
                raise CorruptMediaError(f"{s['kind']} stream holds no data" + (f" ({scan_errors[0]})" if scan_errors else ""), spath)
            warnings.append(f"{s['kind']} stream #{s['index']} holds no data and is ignored")
            continue
        streams.append(
            StreamInfo(
                index=s["index"], kind=s["kind"], codec=s["codec"], description=s["description"],
                # relative to the container start already (ffmpeg shifts its output by the input's
                # start time: subtracting head.start again cut 1.4 s off every MPEG-TS video);
                # encoder priming can make a first timestamp negative
                start=max(0.0, m["start"]), end=max(0.0, m["end"]), n_packets=m["n_packets"],
                width=s.get("width", 0), height=s.get("height", 0), fps=s.get("fps", 0.0), rotation=s.get("rotation", 0),
                sar=s.get("sar", 1.0), variable_frame_rate=m["vfr"] if s["kind"] == "video" else False,
                sample_rate=s.get("sample_rate", 0), channels=s.get("channels", 0),
            )
        )
    video = next((s for s in streams if s.kind == "video"), None)
    audio = next((s for s in streams if s.kind == "audio"), None)
    if video is None and audio is None:
        raise CorruptMediaError("no stream holds decodable data" + (f" ({scan_errors[0]})" if scan_errors else ""), spath)

    measured_end = max(s.end for s in streams)
    # some containers (Matroska) declare the last timestamp as the duration, others the length:
    # with a start offset, only data that falls short of both is truncated
    if head.duration is not None and head.duration > 1.0 \
            and measured_end + max(0.0, head.start) < 0.9 * head.duration - 0.5:
        raise CorruptMediaError(
            f"truncated: the header says {head.duration:.2f} s but the data ends at {measured_end:.2f} s"
            + (f" ({scan_errors[0]})" if scan_errors else ""),
            spath,
        )
    if scan_errors:
        warnings.append(f"ffmpeg reported {len(scan_errors)} problem(s) while reading packets, first: {scan_errors[0]}")
    duration = measured_end
    if max_duration is not None and duration > max_duration:
        raise MediaTooLargeError(f"duration {duration:.1f} s exceeds the limit of {max_duration:.1f} s", spath)

    n_frames, working, source_size = 0, (0, 0), (0, 0)
    if video is not None:
        if video.width <= 0 or video.height <= 0:
            raise UnsupportedStreamError(f"video stream #{video.index} has no frame size ({video.description})", spath)
        disp_w = int(round(video.width * video.sar))
        disp_h = video.height
        if video.rotation in (90, 270):
            disp_w, disp_h = disp_h, disp_w
        source_size = (disp_w, disp_h)
        working = _working_size(disp_w, disp_h, max_side)
        n_frames = max(1, n_frames_for_duration(video.end))
        # variable frame rate is a fact (info.variable_frame_rate), not a warning here: the report
        # states it once, from that fact (verdict.quality_warnings)
    n_samples = n_samples_for_duration(audio.end) if audio is not None else 0
    return MediaInfo(
        path=str(p.resolve()), size_bytes=size, container=head.container, duration=duration,
        has_video=video is not None, has_audio=audio is not None, n_frames=n_frames, n_samples=n_samples,
        working_size=working, source_fps=video.fps if video else 0.0, source_size=source_size,
        video_codec=video.codec if video else None, audio_codec=audio.codec if audio else None,
        source_sample_rate=audio.sample_rate if audio else 0, source_channels=audio.channels if audio else 0,
        variable_frame_rate=bool(video and video.variable_frame_rate), bitrate_kbps=head.bitrate,
        tags=head.tags, streams=streams, warnings=warnings,
    )


# ---------------------------------------------------------------------------------------
class _FFmpegPipe:
    """A decoding ffmpeg whose stdout is read in exact-size chunks, with a stall limit.

    stderr goes to a temporary file (no pipe to fill up and deadlock); the process is killed
    on close, including when the reading generator is abandoned.
    """

    def __init__(self, cmd: list[str], path: str, stall_timeout: float):
        self.path = path
        self.stall_timeout = stall_timeout
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err, bufsize=0,
                                         env=child_env())
        except OSError as err:
            self._err.close()
            raise MediaError(f"cannot run ffmpeg ({cmd[0]}): {err}", path) from err
        self._fd = self.proc.stdout.fileno()
        enlarge_pipe(self._fd)  # fewer wake-ups per frame

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` (a byte view of the destination array); fewer bytes only at the end."""
        nbytes, got = len(view), 0
        while got < nbytes:
            ready, _, _ = select.select([self._fd], [], [], self.stall_timeout)
            if not ready:
                self.close()
                raise MediaTimeoutError(f"decoder produced no data for {self.stall_timeout:.0f} s and was stopped", self.path)
            n = os.readv(self._fd, [view[got:]])
            if n == 0:
                break
            got += n
        return got

    def stderr_lines(self) -> list[str]:
        self._err.seek(0)
        return ffmpeg_lines(self._err.read().decode("utf-8", "replace"))

    def close(self) -> None:
        """Kill ffmpeg if it still runs and reap it. Safe to call more than once."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill -9 does not time out in practice
            log.error("ffmpeg (pid %d) did not exit after kill", self.proc.pid)

    def release(self) -> None:
        """Close our ends of the pipes; call after :meth:`close` once no thread reads any more."""
        self.close()
        self.proc.stdout.close()
        if not self._err.closed:
            self._err.close()


class Prefetch:
    """Run an iterator in a background thread, ``depth`` items ahead, so that its work (ffmpeg
    reads, OpenCV face detection: both release the GIL) overlaps the consumer's on another core.

    Exceptions are re-raised in the consumer. :meth:`close` stops the producer (``interrupt``,
    if given, is called first to unblock a producer waiting on I/O, e.g. by killing ffmpeg),
    joins the thread and closes the iterator (a generator's cleanup runs)."""

    _DONE = object()

    def __init__(self, iterator: Iterator, depth: int = 2, name: str = "avdetect-prefetch", interrupt=None):
        self._it = iterator
        self._interrupt = interrupt
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._it:
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
            else:
                self._q.put(self._DONE)
        except BaseException as err:  # handed to the consumer, which raises it
            self._q.put(err)
        finally:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._DONE:
            self._q.put(self._DONE)  # stay exhausted
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        if self._interrupt is not None:
            self._interrupt()
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.1)  # unblock a producer waiting on a full queue
            except queue.Empty:
                pass
        self._thread.join()
        while True:  # closed: whatever was left is dropped, and a later next() ends at once
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(self._DONE)


class _FileHash:
    """The SHA-256 of one file, computed once: in the caller's thread on first use, or in a
    background thread from :meth:`start` on (then :meth:`value` waits for it)."""

    def __init__(self, path: str):
        self.path = path
        self._value: str | None = None
        self._call: BackgroundCall | None = None

    def start(self) -> None:
        if self._value is None and self._call is None:
            self._call = BackgroundCall(sha256_file, self.path, name="avdetect-sha256")

    def value(self) -> str:
        if self._value is None:
            self._value = self._call.result() if self._call is not None else sha256_file(self.path)
        return self._value


class Media:
    """A decoded view of one media file. Create with :func:`load_media`.

    Facts are attributes (see :class:`MediaInfo`); pixels and samples are decoded on demand.
    """

    def __init__(self, info: MediaInfo, stall_timeout: float = DEFAULT_STALL_TIMEOUT, decode_threads: int | None = None):
        self.info = info
        self.stall_timeout = stall_timeout
        #: threads ffmpeg decodes and scales the video with (None: ffmpeg's own choice)
        self.decode_threads = decode_threads
        self._audio: np.ndarray | None = None
        self._hash = _FileHash(info.path)  # shared with the views of the same file (at_max_side)

    # facts (the rest of MediaInfo is on .info) ------------------------------------------
    @property
    def path(self) -> str:
        """Absolute path of the file."""
        return self.info.path

    @property
    def duration(self) -> float:
        """Seconds, the longest stream's end."""
        return self.info.duration

    @property
    def n_frames(self) -> int:
        """Frames on the 25 fps grid (0 without video)."""
        return self.info.n_frames

    @property
    def n_samples(self) -> int:
        """Mono 16 kHz audio samples (0 without audio)."""
        return self.info.n_samples

    @property
    def has_video(self) -> bool:
        """A decodable video stream is present."""
        return self.info.has_video

    @property
    def has_audio(self) -> bool:
        """A decodable audio stream is present."""
        return self.info.has_audio

    @property
    def working_size(self) -> tuple[int, int]:
        """(width, height) of decoded frames."""
        return self.info.working_size

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) as displayed, rotation applied."""
        return self.info.source_size

    def at_max_side(self, max_side: int) -> "Media":
        """The same file decoded with longest side ``max_side`` (the facts already inspected are
        kept: no new inspection); ``self`` when that is its decode size already."""
        if not self.has_video:
            return self
        size = _working_size(*self.info.source_size, max_side)
        if size == tuple(self.info.working_size):
            return self
        view = Media(replace(self.info, working_size=size), stall_timeout=self.stall_timeout,
                     decode_threads=self.decode_threads)
        view._hash = self._hash  # the same bytes
        return view

    @property
    def source_fps(self) -> float:
        """Declared frame rate of the source."""
        return self.info.source_fps

    @property
    def video_codec(self) -> str | None:
        """Codec of the video stream."""
        return self.info.video_codec

    @property
    def audio_codec(self) -> str | None:
        """Codec of the audio stream."""
        return self.info.audio_codec

    @property
    def source_sample_rate(self) -> int:
        """Sample rate of the source audio."""
        return self.info.source_sample_rate

    @property
    def source_channels(self) -> int:
        """Channel count of the source audio."""
        return self.info.source_channels

    @property
    def variable_frame_rate(self) -> bool:
        """The source frame rate varies."""
        return self.info.variable_frame_rate

    @property
    def streams(self) -> list[StreamInfo]:
        """The video and audio streams used."""
        return self.info.streams

    @property
    def warnings(self) -> list[str]:
        """Problems noticed while inspecting."""
        return self.info.warnings

    def __repr__(self) -> str:
        return (
            f"Media({Path(self.info.path).name!r}, duration={self.info.duration:.2f}s, "
            f"video={self.info.working_size if self.info.has_video else None}, n_frames={self.info.n_frames}, "
            f"audio={'16kHz mono' if self.info.has_audio else None})"
        )

    @property
    def _video_index(self) -> int:
        return next(s.index for s in self.info.streams if s.kind == "video")

    @property
    def _audio_index(self) -> int:
        return next(s.index for s in self.info.streams if s.kind == "audio")

    @property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes (computed on first use, or waited for after :meth:`hash_ahead`)."""
        return self._hash.value()

    def hash_ahead(self) -> None:
        """Start computing :attr:`sha256` in a background thread (hashlib releases the interpreter
        lock while it hashes), so that the report's provenance does not hash a long file after the
        analysis: ``detect`` starts it at once. A read error is raised by :attr:`sha256`."""
        self._hash.start()

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        w, h = self.info.working_size
        return (h, w, 3)

    # video -------------------------------------------------------------------------------
    def _video_cmd(self, start: int, pixel_format: str) -> list[str]:
        w, h = self.info.working_size
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error"]
        if self.decode_threads is not None:
            n = str(int(self.decode_threads))
            cmd += ["-threads", n, "-filter_threads", n]
        if start > 0:
            cmd += ["-ss", f"{frames_to_seconds(start):.6f}"]
        cmd += ["-i", self.info.path, "-map", f"0:{self._video_index}", "-an", "-sn", "-dn"]
        vf = f"fps={FPS}:start_time=0:round=near,scale={w}:{h}:flags=area,setsar=1,format={pixel_format}"
        return cmd + ["-vf", vf, "-f", "rawvideo", "-pix_fmt", pixel_format, "-"]

    def frame_shape_for(self, pixel_format: str) -> tuple[int, ...]:
        """Array shape of one decoded frame: (H, W, 3) for rgb24, (H * 3 / 2, W) for yuv420p (I420)."""
        w, h = self.info.working_size
        if pixel_format == "rgb24":
            return (h, w, 3)
        if pixel_format == "yuv420p":
            return (h * 3 // 2, w)
        raise ValueError(f"unsupported pixel format {pixel_format!r} (rgb24 or yuv420p)")

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield RGB uint8 frames (H, W, 3) for grid frames ``[start, stop)``: exactly that many."""
        for _, window in self.iter_windows(size=1, start=start, stop=stop):
            yield window[0]

    def iter_windows(
        self, size: int, start: int = 0, stop: int | None = None, pixel_format: str = "rgb24"
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame_index, frames (n, H, W, 3) uint8)`` for consecutive windows of
        ``size`` frames covering ``[start, stop)`` (the last window may be shorter).

        One ffmpeg process serves the whole range; only one window is held at a time.
        ``pixel_format="yuv420p"`` gives I420 frames of shape (H * 3 / 2, W) instead: half the
        bytes, and the first H rows are the luma plane (what face detection needs).
        """
        if not self.info.has_video:
            raise MediaError("the file has no video stream", self.info.path)
        stop = self.info.n_frames if stop is None else min(stop, self.info.n_frames)
        start = max(0, start)
        if size < 1:
            raise ValueError("window size must be >= 1")
        if start >= stop:
            return
        pipe = _FFmpegPipe(self._video_cmd(start, pixel_format), self.info.path, self.stall_timeout)
        # A reader thread decodes ahead (os.readv releases the GIL) while the caller works on
        # the previous window: decoding overlaps face detection / the model. At most ~16 frames
        # (or one window) wait, so memory stays flat. Closing kills ffmpeg first, so a reader
        # blocked in readv sees end-of-stream.
        ahead = Prefetch(self._windows_from(pipe, size, start, stop, pixel_format), depth=max(1, 16 // size),
                         name="avdetect-decode", interrupt=pipe.close)
        try:
            yield from ahead
        finally:
            ahead.close()
            pipe.release()

    def _windows_from(self, pipe: "_FFmpegPipe", size: int, start: int, stop: int, pixel_format: str):
        shape = self.frame_shape_for(pixel_format)
        frame_bytes = int(np.prod(shape))
        decoded = 0
        ended = False
        last: np.ndarray | None = None
        index = start
        while index < stop:
            n = min(size, stop - index)
            out = np.empty((n, *shape), dtype=np.uint8)
            for k in range(n):
                if not ended:
                    # decode straight into the window's memory: no per-frame allocation or copy
                    ended = pipe.readinto(memoryview(out[k]).cast("B")) < frame_bytes  # a partial frame is dropped
                    if not ended:
                        last = out[k]
                        decoded += 1
                        continue
                if last is None:
                    err = pipe.stderr_lines()
                    raise CorruptMediaError("no video frame could be decoded" + (f" ({err[0]})" if err else ""), self.info.path)
                out[k] = last  # the decoder ended early: hold the last frame
            yield index, out
            index += n
        if (stop - start) - decoded > 2:
            log.warning("%s: decoder delivered %d of %d frames; the last frame was repeated", self.info.path, decoded, stop - start)

    def read_frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """All frames of ``[start, stop)`` as one array (n, H, W, 3). Memory grows with the span."""
        windows = [w for _, w in self.iter_windows(size=250, start=start, stop=stop)]
        if not windows:
            return np.empty((0, *self.frame_shape), dtype=np.uint8)
        return np.concatenate(windows)

    # audio -------------------------------------------------------------------------------
    def _decode_audio(self, start_s: float, n_samples: int) -> np.ndarray:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error"]
        if start_s > 0:
            cmd += ["-ss", f"{start_s:.6f}"]
        cmd += ["-i", self.info.path, "-map", f"0:{self._audio_index}", "-vn", "-sn", "-dn", *_AUDIO_FILTER_ARGS, "-f", "f32le", "-"]
        pipe = _FFmpegPipe(cmd, self.info.path, self.stall_timeout)
        out = np.zeros(n_samples, dtype=np.float32)
        got = 0
        try:
            raw = memoryview(out).cast("B")  # float32 little-endian, as ffmpeg writes f32le
            got = pipe.readinto(raw) // 4
        finally:
            pipe.release()
        if n_samples - got > n_samples_for_duration(0.01):
            log.warning("%s: audio decoder delivered %d of %d samples; the rest is silence", self.info.path, got, n_samples)
        np.clip(out, -1.0, 1.0, out=out)
        return out

    @property
    def audio(self) -> np.ndarray:
        """The whole audio track, mono float32 at 16 kHz, shape (n_samples,). Decoded once, cached."""
        if not self.info.has_audio:
            raise MediaError("the file has no audio stream", self.info.path)
        if self._audio is None:
            self._audio = self._decode_audio(0.0, self.info.n_samples)
        return self._audio

    def read_audio(self, start_s: float = 0.0, stop_s: float | None = None) -> np.ndarray:
        """Mono 16 kHz samples of ``[start_s, stop_s)`` without decoding the rest."""
        if not self.info.has_audio:
            raise MediaError("the file has no audio stream", self.info.path)
        first = n_samples_for_duration(max(0.0, start_s))
        last = self.info.n_samples if stop_s is None else min(self.info.n_samples, n_samples_for_duration(stop_s))
        if last <= first:
            return np.zeros(0, dtype=np.float32)
        if self._audio is not None:
            return self._audio[first:last]
        return self._decode_audio(samples_to_seconds(first), last - first)


def load_media(
    path: str | os.PathLike,
    max_side: int = DECODE_MAX_SIDE,
    max_duration: float | None = None,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> Media:
    """Open an audio or video file.

    Args:
        path: any file ffmpeg can read (mp4, mov, mkv, webm, avi, mpg, wav, mp3, flac, m4a, ...).
        max_side: longer side of decoded frames; larger videos are scaled down at decode time,
            smaller ones kept. The default, :data:`avdetect.vocab.DECODE_MAX_SIDE`, is the size
            that preprocessing, forging and ``detect`` decode at, so ``load_media(path)`` gives
            the frames (and face boxes) they see.
        max_duration: refuse files longer than this many seconds (None: no limit).
        stall_timeout: seconds without decoder output before decoding is aborted.

    Raises:
        MediaNotFoundError, NotMediaError, CorruptMediaError, NoStreamsError,
        UnsupportedStreamError, MediaTooLargeError, MediaTimeoutError (all :class:`MediaError`).
    """
    t0 = time.perf_counter()
    info = inspect_media(path, max_side=max_side, max_duration=max_duration)
    log.debug("inspected %s in %.3f s", info.path, time.perf_counter() - t0)
    for w in info.warnings:
        log.warning("%s: %s", info.path, w)
    return Media(info, stall_timeout=stall_timeout)


def write_video(path: str | os.PathLike, frames: np.ndarray, audio: np.ndarray | None, crf: int = 20,
                error: type[AVDetectError] = MediaError) -> Path:
    """Encode RGB ``frames`` (n, H, W, 3) uint8 at 25 fps and mono 16 kHz ``audio`` (or None) into an
    mp4 (H.264 yuv420p, one x264 thread so that output is deterministic; AAC 64 kb/s), written
    under a temporary name and renamed when complete. Odd frame sizes are padded by one pixel."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = frames.shape[1:3]
    with tempfile.TemporaryDirectory(prefix="avdetect-enc-") as td:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-"]
        if audio is not None:
            wav = os.path.join(td, "a.wav")
            sf.write(wav, np.asarray(audio, np.float32), SAMPLE_RATE, subtype="PCM_16")
            cmd += ["-i", wav, "-map", "0:v", "-map", "1:a"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(int(crf)), "-threads", "1", "-pix_fmt", "yuv420p",
                "-g", "50"]
        if audio is not None:
            cmd += ["-c:a", "aac", "-b:a", "64k", "-ar", str(SAMPLE_RATE), "-ac", "1"]
        tmp_out = path.with_name(path.name + ".part.mp4")
        cmd += ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                "-movflags", "+faststart", str(tmp_out)]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, timeout=600,
                              env=child_env())
        if proc.returncode != 0:
            tmp_out.unlink(missing_ok=True)
            raise error(f"ffmpeg failed to encode: {proc.stderr.decode(errors='replace').strip()[-300:]}", path)
        os.replace(tmp_out, path)
    return path
