"""``avdetect probe``: what is in a file, and can we see a face in it?

Media facts (container, streams, duration, frame grid, audio) plus face coverage (fraction of
frames with a valid face of the main speaker), the number of faces seen and the processing time.
Face tracking runs in streaming mode without crops, so memory stays flat for any length.
"""
from __future__ import annotations

import time
from pathlib import Path

from avdetect._version import __version__
from avdetect.media import load_media, stream_start_warning


def probe(path, faces: bool = True, backend: str = "auto", max_side: int | None = None) -> dict:
    """Facts about ``path`` as a JSON-ready dict (times in seconds). Raises MediaError subclasses."""
    t0 = time.perf_counter()
    media = load_media(path) if max_side is None else load_media(path, max_side=max_side)
    t_inspect = time.perf_counter() - t0
    info = media.info
    out: dict = {
        "file": info.path,
        "size_bytes": info.size_bytes,
        "sha256": media.sha256,
        "container": info.container,
        "duration_s": round(info.duration, 4),
        "has_video": info.has_video,
        "has_audio": info.has_audio,
        "video": None,
        "audio": None,
        "tags": info.tags,
        "warnings": list(info.warnings) + [w for w in [stream_start_warning(info)] if w],
    }
    if info.has_video:
        v = next(s for s in info.streams if s.kind == "video")
        out["video"] = {
            "codec": v.codec, "source_size": list(info.source_size), "source_fps": info.source_fps,
            "variable_frame_rate": info.variable_frame_rate, "rotation": v.rotation,
            "n_frames": info.n_frames, "fps": 25, "working_size": list(info.working_size),
            "start_s": round(v.start, 4), "duration_s": round(v.duration, 4),
        }
    if info.has_audio:
        a = next(s for s in info.streams if s.kind == "audio")
        out["audio"] = {
            "codec": a.codec, "source_sample_rate": a.sample_rate, "source_channels": a.channels,
            "n_samples": info.n_samples, "sample_rate": 16000, "start_s": round(a.start, 4), "duration_s": round(a.duration, 4),
        }
    out["faces"] = None
    t_faces = 0.0
    if faces and info.has_video:
        from avdetect.faces import FaceTracker

        t1 = time.perf_counter()
        tracker = FaceTracker(backend=backend, crops=False)
        parts = list(tracker.iter_windows(media, window=1000))
        t_faces = time.perf_counter() - t1
        valid = sum(int(p.valid.sum()) for p in parts)
        last = parts[-1]
        out["faces"] = {
            "backend": last.backend,
            "coverage": round(valid / max(1, info.n_frames), 4),
            "n_faces": len(last.faces),
            "main_track": last.main_track,
            "explanation": last.explanation,
        }
        if out["faces"]["coverage"] < 0.5:
            out["warnings"].append(f"a face is visible in only {out['faces']['coverage']:.0%} of the frames")
    out["timing_s"] = {"inspect": round(t_inspect, 3), "faces": round(t_faces, 3), "total": round(time.perf_counter() - t0, 3)}
    out["avdetect_version"] = __version__
    return out


def format_probe(d: dict) -> str:
    """Human-readable text of a :func:`probe` result."""
    lines = [f"{Path(d['file']).name}"]
    lines.append(f"  file        {d['size_bytes'] / 1e6:.2f} MB, {d['container']}, sha256 {d['sha256'][:16]}...")
    lines.append(f"  duration    {d['duration_s']:.3f} s")
    v = d["video"]
    if v:
        vfr = ", variable frame rate" if v["variable_frame_rate"] else ""
        rot = f", rotated {v['rotation']} deg" if v["rotation"] else ""
        lines.append(
            f"  video       {v['codec']} {v['source_size'][0]}x{v['source_size'][1]} @ {v['source_fps']:g} fps{vfr}{rot}"
            f" -> {v['n_frames']} frames at 25 fps, {v['working_size'][0]}x{v['working_size'][1]}"
        )
    else:
        lines.append("  video       none")
    a = d["audio"]
    if a:
        lines.append(
            f"  audio       {a['codec']} {a['source_sample_rate']} Hz, {a['source_channels']} ch"
            f" -> {a['n_samples']} samples mono 16 kHz ({a['duration_s']:.3f} s)"
        )
    else:
        lines.append("  audio       none")
    f = d["faces"]
    if f:
        lines.append(f"  faces       coverage {f['coverage']:.1%}, {f['n_faces']} face(s) seen ({f['backend']})")
        lines.append(f"              {f['explanation']}")
    for w in d["warnings"]:
        lines.append(f"  warning     {w}")
    t = d["timing_s"]
    lines.append(f"  time        {t['total']:.2f} s (inspect {t['inspect']:.2f} s, faces {t['faces']:.2f} s)")
    return "\n".join(lines)
