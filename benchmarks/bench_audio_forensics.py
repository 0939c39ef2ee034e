"""Cost of the audio splice analysis (audio features + splice cues, voice cue included), in
seconds per minute of audio, against a baseline checkout measured in the same run.

    python benchmarks/bench_audio_forensics.py [FILE] [--minutes 10] [--repeat 3] [--baseline ../main]

FILE (default: the first SadTalker sample clip in ../shared/samples) is repeated with ffmpeg's
concat filter to ``--minutes`` of audio (AAC in .m4a, made once, outside the timing). Each
checkout (this one, and ``--baseline`` when given) is timed in its own Python process, median
of ``--repeat`` runs:

* ``features``: ``load_media`` + :func:`audio_frame_features` (decoding included, 60 s chunks);
* ``splices``: :func:`analyze_audio_splices` on those features (recording-condition and voice cues);
* ``peak RSS``: the worker process's peak resident memory (decoded audio held by ``Media`` included).

Figures are wall-clock on a shared machine: other jobs make them noisy; compare the ratios
measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"


def _worker(root: str, path: str, repeat: int) -> None:
    """Time one checkout (its package first on sys.path); print a JSON line."""
    import resource

    sys.path.insert(0, root)
    from avdetect.forensics.audio import analyze_audio_splices, audio_frame_features
    from avdetect.media import load_media
    from avdetect.timegrid import frames_to_seconds

    t_feat, t_spl = [], []
    n_items = 0
    for _ in range(repeat):
        t = time.perf_counter()
        af = audio_frame_features(load_media(path))
        t_feat.append(time.perf_counter() - t)
        t = time.perf_counter()
        ev, _tracks = analyze_audio_splices(af)
        t_spl.append(time.perf_counter() - t)
        n_items = len(ev)
    minutes = frames_to_seconds(len(af)) / 60
    print(json.dumps({"minutes": minutes, "features": statistics.median(t_feat), "splices": statistics.median(t_spl),
                      "items": n_items, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run(root: Path, path: Path, repeat: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(root), str(path), str(repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="a file with speech (default: first SadTalker sample clip)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", help="another checkout of avdetect to compare against (e.g. ../main)")
    args = ap.parse_args()
    src = Path(args.file) if args.file else next(iter(sorted(SAMPLES.glob("sadtalker*.mp4"))), None)
    if src is None:
        sys.exit("no input: give FILE (no sample clips found)")
    sys.path.insert(0, str(ROOT))
    from avdetect.media import ffmpeg_exe, load_media

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.m4a"
        n = max(1, int(-(-args.minutes * 60 // load_media(src).duration)))
        inputs = [a for _ in range(n) for a in ("-i", str(src))]
        fc = "".join(f"[{i}:a:0]" for i in range(n)) + f"concat=n={n}:v=0:a=1[a]"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *inputs, "-filter_complex", fc, "-map", "[a]",
                        "-t", f"{args.minutes * 60}", "-c:a", "aac", str(path)], check=True)
        rows = [("this checkout", _run(ROOT, path, args.repeat))]
        if args.baseline:
            rows.append((f"baseline {args.baseline}", _run(Path(args.baseline).resolve(), path, args.repeat)))
    minutes = rows[0][1]["minutes"]
    print(f"input: {src.name} concatenated to {minutes:.2f} min of audio (AAC); median of {args.repeat} runs")
    print(f"{'checkout':<34}{'features s/min':>16}{'splices s/min':>15}{'total s/min':>13}{'items':>7}{'peak RSS MB':>13}")
    for name, r in rows:
        tot = r["features"] + r["splices"]
        print(f"{name[:33]:<34}{r['features'] / minutes:>16.3f}{r['splices'] / minutes:>15.3f}{tot / minutes:>13.3f}"
              f"{r['items']:>7}{r['peak_rss_mb']:>13.0f}")
    if len(rows) == 2:
        a, b = rows[0][1], rows[1][1]
        print(f"ratio this / baseline: features {a['features'] / b['features']:.2f}x, splices {a['splices'] / max(b['splices'], 1e-9):.2f}x, "
              f"total {(a['features'] + a['splices']) / (b['features'] + b['splices']):.2f}x")


if __name__ == "__main__":
    main()
