"""Speed, size and face coverage of the synthetic benchmark generator.

    python benchmarks/bench_synth.py --n 60 --workers 2 --duration 5 [--coverage]

Prints clips per minute for ``generate`` with N worker processes on 5-second clips, the
split of one clip's time into rendering and encoding (single process, the baseline being the
bare x264+AAC encode of the same frames), disk size per 100 clips, and optionally the Haar
face coverage of every generated clip (decoded from the mp4 files).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from avdetect.synth import ClipSpec, Manipulation, encode, generate, render  # noqa: E402


def haar_coverage(path: Path, size: int) -> float:
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, size, size)
    casc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    return float(np.mean([len(casc.detectMultiScale(f, 1.1, 5, minSize=(size // 8, size // 8))) > 0 for f in frames]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--variant", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--coverage", action="store_true", help="also measure Haar face coverage of every clip")
    ap.add_argument("--keep", default="", help="keep the generated folder here")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)

    # single-clip breakdown: render vs encode (baseline = the encode alone)
    reps = 3
    t_render = t_encode = 0.0
    with tempfile.TemporaryDirectory() as td:
        for k in range(reps):
            t0 = time.perf_counter()
            clip = render(ClipSpec(seed=1000 + k, duration=args.duration, variant=args.variant,
                                   manipulation=Manipulation(kind="both", strength=0.6)))
            t1 = time.perf_counter()
            encode(clip, Path(td) / f"{k}.mp4", crf=23)
            t2 = time.perf_counter()
            t_render += t1 - t0
            t_encode += t2 - t1
    t_render /= reps
    t_encode /= reps
    print(f"one {args.duration:.0f}-s clip, 1 process: render {t_render:.2f} s + encode {t_encode:.2f} s "
          f"= {t_render + t_encode:.2f} s; render / bare encode = {t_render / t_encode:.2f}x")

    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        t0 = time.perf_counter()
        summary = generate(out, n=args.n, seed=args.seed, workers=args.workers, variant=args.variant,
                           min_duration=args.duration, max_duration=args.duration)
        took = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        mp4 = sum(p.stat().st_size for p in out.rglob("*.mp4"))
        print(f"generate n={args.n} workers={args.workers} duration={args.duration} s: {took:.1f} s -> "
              f"{args.n / took * 60:.1f} clips/min ({args.n * args.duration / took:.1f} s of video per s)")
        print(f"ideal from the single-clip figure: {60 / (t_render + t_encode) * args.workers:.1f} clips/min; "
              f"measured / ideal = {args.n / took * 60 / (60 / (t_render + t_encode) * args.workers):.2f}")
        print(f"disk: {size / 1e6 * 100 / args.n:.1f} MB per 100 clips (mp4 {mp4 / 1e6 * 100 / args.n:.1f} MB)")
        print("types:", json.dumps(summary["modify_type"]))
        if args.coverage:
            meta = json.loads((out / "metadata.json").read_text())
            covs = np.array([haar_coverage(out / e["file"], 256) for e in meta])
            print(f"Haar coverage over {len(covs)} clips: min {covs.min():.3f}, mean {covs.mean():.3f}, "
                  f"clips < 0.95: {(covs < 0.95).sum()}")
            worst = np.argsort(covs)[:3]
            print("worst:", [(meta[i]["file"], round(float(covs[i]), 3)) for i in worst])
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
