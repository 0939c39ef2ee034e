"""Decode + face-track speed against a plain ffmpeg decode, and peak memory on long videos.

    python benchmarks/bench_media.py FILE [--repeat 3]
    python benchmarks/bench_media.py FILE --long 10     # also: peak memory on a 10-minute video
    python benchmarks/bench_media.py FILE --face-backends opencv,mediapipe   # both, in one run
    python benchmarks/bench_media.py FILE --loop 2      # FILE looped (stream copy) to 2 minutes first

Speed: the wall time of ``load_media`` + face tracking with crops (the streaming pass that
``detect`` uses: windows are consumed and dropped) against ``ffmpeg -i FILE -f null -`` on the same
file in the same run (median of ``--repeat`` runs each); the ratio is the figure that matters,
since absolute times depend on the machine and its load.

Memory: the long video is FILE looped with stream copy (no re-encoding) to the given length; the
pipeline runs in a child process that reports its own peak RSS and that of its ffmpeg children.
A 1-minute run is measured too, to show that memory does not grow with duration.
With ``--face-backends`` every figure is measured for each backend, interleaved in the same run
(default: ``auto``, mediapipe where installed, else the Haar cascades).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdetect.media import ffmpeg_exe, load_media  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (ffmpeg), user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_ffmpeg_null(path: str) -> tuple[float, float]:
    """(wall, cpu) seconds of a plain decode of every stream."""
    t, c = time.perf_counter(), cpu_seconds()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", path, "-f", "null", "-"], check=True)
    return time.perf_counter() - t, cpu_seconds() - c


def run_pipeline(path: str, backend: str = "auto") -> dict:
    from avdetect.faces import FaceTracker

    c = cpu_seconds()
    t = time.perf_counter()
    media = load_media(path)
    t_inspect = time.perf_counter() - t
    valid = frames = 0
    for part in FaceTracker(backend=backend, crops=True).iter_windows(media, window=250):
        valid += int(part.valid.sum())
        frames += len(part)
    return {"seconds": time.perf_counter() - t, "cpu_s": cpu_seconds() - c, "inspect_s": t_inspect, "frames": frames, "coverage": valid / max(1, frames),
            "working_size": list(media.working_size), "duration_s": media.duration}


def child_main(path: str, backend: str) -> None:
    out = run_pipeline(path, backend)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_ffmpeg_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(out))


def measure_in_child(path: str, backend: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", path, "--face-backends", backend], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_long(src: str, minutes: float, folder: str) -> str:
    out = str(Path(folder) / f"long_{minutes:g}min{Path(src).suffix}")
    loops = int(minutes * 60 / max(0.5, load_media(src).duration)) + 1
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-stream_loop", str(loops), "-i", src,
                    "-c", "copy", "-t", str(minutes * 60), out], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", type=float, default=0.0, metavar="MINUTES", help="also measure peak memory on a video this long")
    ap.add_argument("--loop", type=float, default=0.0, metavar="MINUTES", help="measure FILE looped to this length")
    ap.add_argument("--face-backends", default="auto", help="comma-separated face backends, each measured (default auto)")
    ap.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    backends = [b.strip() for b in args.face_backends.split(",") if b.strip()]
    if args.child:
        child_main(args.child, backends[0])
        return
    if not args.file:
        ap.error("FILE is required")
    with tempfile.TemporaryDirectory() as loop_dir:
        if args.loop:
            args.file = make_long(args.file, args.loop, loop_dir)
        measure(args, backends)


def measure(args, backends: list[str]) -> None:
    media = load_media(args.file)
    print(f"file: {args.file}  ({media.source_size[0]}x{media.source_size[1]} {media.video_codec} @ {media.source_fps:g} fps, "
          f"{media.duration:.2f} s, working size {media.working_size[0]}x{media.working_size[1]})")
    ff, ff_cpu = [], []
    ours = {b: [] for b in backends}
    ours_cpu = {b: [] for b in backends}
    last = {}
    for _ in range(args.repeat):  # interleaved, so that machine load affects all alike
        wall, cpu = time_ffmpeg_null(args.file)
        ff.append(wall)
        ff_cpu.append(cpu)
        for b in backends:
            last[b] = r = run_pipeline(args.file, b)
            ours[b].append(r["seconds"])
            ours_cpu[b].append(r["cpu_s"])
    t_ff, c_ff = statistics.median(ff), statistics.median(ff_cpu)
    print(f"ffmpeg -f null decode     : {t_ff:7.3f} s wall, {c_ff:7.3f} s CPU  (median of {args.repeat})")
    for b in backends:
        r = last[b]
        t_ours, c_ours = statistics.median(ours[b]), statistics.median(ours_cpu[b])
        print(f"[{b}] load_media + face track: {t_ours:7.3f} s wall, {c_ours:7.3f} s CPU  (inspect {r['inspect_s']:.3f} s; "
              f"coverage {r['coverage']:.3f})")
        print(f"[{b}] ratio ours / ffmpeg    : {t_ours / t_ff:7.2f} wall, {c_ours / c_ff:5.2f} CPU   (target <= 2.0 on 720p 25 fps)")
        print(f"[{b}] speed                  : {r['frames'] / t_ours:7.1f} frames/s, {media.duration / t_ours:.1f}x real time")
    print(f"machine load (1 min avg)  : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall ratios suffer under load)")

    if args.long:
        with tempfile.TemporaryDirectory() as tmp:
            for minutes in sorted({1.0, args.long}):
                long_path = make_long(args.file, minutes, tmp)
                for b in backends:
                    m = measure_in_child(long_path, b)
                    print(f"[{b}] {minutes:4g} min video: {m['seconds']:.1f} s ({m['duration_s'] / m['seconds']:.1f}x real time), "
                          f"peak RSS python {m['peak_rss_mb']:.0f} MB, largest ffmpeg child {m['peak_rss_ffmpeg_mb']:.0f} MB, "
                          f"coverage {m['coverage']:.3f}")


if __name__ == "__main__":
    main()
