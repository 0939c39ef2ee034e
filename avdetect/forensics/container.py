"""Container traces: facts from the file's headers and packet timing (``media.info``).

Which software wrote the file, when it says it was created, whether its streams start and end
together, whether frames arrive at a regular rate, how many bits each pixel gets. These are
facts, not verdicts: every phone app and every upload platform re-encodes, and tags can be
edited at will; they help an investigator ask where a file has been.
"""
from __future__ import annotations

import re

from avdetect.forensics.evidence import Evidence, Track
from avdetect.forensics.registry import Analysis, Inputs

RELIABILITY = "Container tags can be rewritten by anyone and are changed by every upload platform; they describe the file's history, not its content."

_SOFTWARE_KEYS = ("encoder", "encoded_by", "software", "com.apple.quicktime.software", "tool", "writing_application", "handler_name")
_TIME_KEYS = ("creation_time", "date", "com.apple.quicktime.creationdate", "modification_time")
_EDITORS = re.compile(r"lavf|ffmpeg|handbrake|premiere|final cut|davinci|resolve|capcut|imovie|after effects|shotcut|kdenlive|openshot|vegas|filmora", re.I)
_CAMERA = re.compile(r"iphone|android|samsung|pixel|canon|nikon|sony|gopro|dji|panasonic|fuji", re.I)


def container_evidence(info) -> list[Evidence]:
    """Evidence items from a :class:`avdetect.media.MediaInfo`."""
    ev: list[Evidence] = []
    tags = {k.lower(): v for k, v in (info.tags or {}).items()}
    software = {k: tags[k] for k in _SOFTWARE_KEYS if k in tags}
    if software:
        text = "; ".join(f"{k}={v}" for k, v in software.items())
        editor = any(_EDITORS.search(v) for v in software.values())
        camera = any(_CAMERA.search(v) for v in software.values())
        ev.append(Evidence(
            kind="container", start_s=None, end_s=None, value={"software": software},
            explanation=(f"the file names the software that wrote it ({text})"
                         + (": it was written or re-written by editing/transcoding software, not straight from a camera" if editor
                            else ": a capture device" if camera else "")),
            strength=0.2 if editor else 0.0, reliability=RELIABILITY,
        ))
    else:
        ev.append(Evidence(
            kind="container", start_s=None, end_s=None, value={"software": None},
            explanation="the file carries no encoder or software tag (stripped, or written by a tool that sets none)",
            strength=0.05, reliability=RELIABILITY,
        ))
    times = {k: tags[k] for k in _TIME_KEYS if k in tags}
    ev.append(Evidence(
        kind="container", start_s=None, end_s=None, value={"creation_times": times or None},
        explanation=("the file states when it was created: " + "; ".join(f"{k}={v}" for k, v in times.items())) if times
        else "the file states no creation time",
        strength=0.0, reliability=RELIABILITY,
    ))
    streams = [s for s in info.streams if s.kind in ("video", "audio")]
    v = next((s for s in streams if s.kind == "video"), None)
    a = next((s for s in streams if s.kind == "audio"), None)
    if v is not None and a is not None:
        d_start, d_end = a.start - v.start, a.end - v.end
        big = max(abs(d_start), abs(d_end))
        ev.append(Evidence(
            kind="container", start_s=None, end_s=None,
            value={"audio_start_minus_video_start_s": d_start, "audio_end_minus_video_end_s": d_end,
                   "video_duration_s": v.duration, "audio_duration_s": a.duration},
            explanation=(f"audio and video streams start {abs(d_start) * 1000:.0f} ms and end {abs(d_end) * 1000:.0f} ms apart"
                         + (": a mismatch larger than encoders leave on their own, as when one stream was cut or replaced" if big > 0.15
                            else ", as usual")),
            strength=0.3 if big > 0.5 else 0.15 if big > 0.15 else 0.0, reliability=RELIABILITY,
        ))
    if v is not None:
        ev.append(Evidence(
            kind="container", start_s=None, end_s=None,
            value={"variable_frame_rate": bool(info.variable_frame_rate), "declared_fps": info.source_fps, "codec": v.codec},
            explanation=("frames arrive at irregular intervals (variable frame rate): typical of phone recordings and screen "
                         "captures, and of files assembled from pieces" if info.variable_frame_rate
                         else f"frames arrive at a constant {info.source_fps:g} fps"),
            strength=0.1 if info.variable_frame_rate else 0.0, reliability=RELIABILITY,
        ))
        w, h = info.source_size
        if info.bitrate_kbps and w and h and info.source_fps:
            bpp = info.bitrate_kbps * 1000 / (w * h * info.source_fps)
            ev.append(Evidence(
                kind="container", start_s=None, end_s=None, value={"bits_per_pixel": bpp, "bitrate_kbps": info.bitrate_kbps},
                explanation=(f"{bpp:.3f} bits per pixel per frame"
                             + (": heavily compressed, as after re-encoding or an upload; fine traces of manipulation may be gone"
                                if bpp < 0.05 else "")),
                strength=0.0, reliability=RELIABILITY,
            ))
    for warning in info.warnings:
        ev.append(Evidence(kind="container", start_s=None, end_s=None, value={"warning": warning},
                           explanation=f"the decoder noted: {warning}", strength=0.1, reliability=RELIABILITY))
    return ev


def _run(inputs: Inputs) -> tuple[list[Evidence], dict[str, Track]]:
    return container_evidence(inputs.media.info), {}


CONTAINER = Analysis(name="container", kinds=("container",), labels={"container": "file container"}, needs=(), run=_run)
