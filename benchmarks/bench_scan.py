"""Corpus scan throughput: the local engine against the Ray engine, on the same clips, in one run.

    python benchmarks/bench_scan.py [--clips 20] [--workers 2] [--engines local,ray] [--checkpoint NAME]
    python benchmarks/bench_scan.py --engines local --workers 1 --prefetch auto,process --repeat 3
        # where faces are tracked (DetectOptions.prefetch), each mode in turn, the same clips

Material: ``--clips`` files cut from the real clips of ``../shared/realfaces/real`` (the first
8 s of each, stream copy; cycling through the folder when it holds fewer), written to a
temporary folder. Each engine scans that folder from scratch into its own results file
(``avdetect.scan.scan``: the same per-file work, ``--workers`` processes or Ray actors, each
loading the model once; for Ray, a local cluster started for the scan, its start counted).
Printed per engine (and per ``--prefetch`` mode, each engine scanning once per mode, the modes
taking turns ``--repeat`` times): wall seconds, clips per second, media seconds per wall second,
and the ratio to the first run of the round; the per-file verdicts of all runs are compared (they
must agree).
The machine may be shared: the load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avdetect.media import ffmpeg_exe, load_media  # noqa: E402
from avdetect.scan import scan  # noqa: E402

MEDIA = {".mp4", ".mov", ".mpg", ".mkv", ".avi"}


def make_clips(n: int, folder: Path, seconds: float = 8.0) -> list[Path]:
    src = sorted(p for p in (ROOT.parent / "shared" / "realfaces" / "real").iterdir() if p.suffix.lower() in MEDIA)
    if not src:
        raise SystemExit("../shared/realfaces/real has no clips")
    out = []
    for i in range(n):
        s = src[i % len(src)]
        dst = folder / f"{i:03d}_{s.stem}{s.suffix}"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(s), "-t", str(seconds), "-c", "copy",
                        str(dst)], check=True)
        out.append(dst)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--checkpoint", default=None, help="checkpoint name or folder (default: the default checkpoint)")
    ap.add_argument("--prefetch", default="auto", help="comma-separated DetectOptions.prefetch modes, each measured")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of all engines and modes, taking turns")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    modes = [m.strip() for m in args.prefetch.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        clips = make_clips(args.clips, corpus)
        media_s = sum(load_media(p).duration for p in clips)
        print(f"{len(clips)} clips, {media_s:.1f} s of media; {args.workers} workers; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        import torch  # noqa: F401  (before the first timed scan: every scan then pays only its own model load)

        results = []
        for round_ in range(args.repeat):
            first = None
            for engine in engines:
                for mode in modes:
                    out = Path(tmp) / f"{engine}-{mode}-{round_}.jsonl"
                    t = time.perf_counter()
                    summary = scan(corpus, out, workers=args.workers, checkpoint=args.checkpoint, engine=engine,
                                   prefetch=mode)
                    wall = time.perf_counter() - t
                    first = first or wall
                    lines = [json.loads(x) for x in out.read_text().splitlines()]
                    results.append({r["file"]: (r.get("verdict", r.get("status")), r.get("fake_probability"))
                                    for r in lines})
                    print(f"{engine:6s} prefetch {mode:7s}: {wall:7.1f} s wall ({summary.ok} ok, {summary.failed} "
                          f"failed), {len(clips) / wall:.2f} clips/s, {media_s / wall:.1f} media-s per s, ratio "
                          f"{wall / first:.2f} to {engines[0]} {modes[0]}; load average {os.getloadavg()[0]:.1f}")
        if len(results) > 1:
            print("per-file verdicts and p(fake) equal in every run:", all(r == results[0] for r in results))


if __name__ == "__main__":
    main()
