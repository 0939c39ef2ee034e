"""Cost of the forensic evidence engine, in seconds per minute of video.

    python benchmarks/bench_forensics.py [FILE] [--minutes 2] [--repeat 3]

FILE (default: the first real sample clip in ../shared/samples) is repeated with ffmpeg's
concat filter to ``--minutes`` of video (re-encoded once, outside the timing). Then, median of
``--repeat`` runs each:

* ``decode + face tracking``: the face tracker alone (with crops), what any detector pays;
* ``decode + faces + features``: ``load_media`` + audio decode + face tracking with crops + the per-frame
  face features (the streaming pass :func:`avdetect.forensics.analyze` makes itself);
* ``analysis only``: every analysis (container, audio splices, sync, visual, blinks) on
  precomputed features: the cost the evidence adds when a detector has already decoded and
  tracked;
* ``analyze()``: the whole call from a file, for reference, and ``ffmpeg -f null`` decode of
  the same file as the floor.

Figures are wall-clock on a shared 2-core machine: others' jobs make them noisy; the ratios
measured in the same run are the figures to compare.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdetect.media import ffmpeg_exe, load_media  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def make_long(src: Path, minutes: float, dst: Path) -> None:
    dur = load_media(src).duration
    n = max(1, int(-(-minutes * 60 // dur)))
    inputs = [a for _ in range(n) for a in ("-i", str(src))]
    streams = "".join(f"[{i}:v:0][{i}:a:0]" for i in range(n))
    fc = f"{streams}concat=n={n}:v=1:a=1[v][a]"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *inputs, "-filter_complex", fc, "-map", "[v]", "-map", "[a]",
                    "-t", f"{minutes * 60}", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-c:a", "aac", str(dst)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="a talking-head video (default: first sample clip)")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    src = Path(args.file) if args.file else next(iter(sorted(SAMPLES.glob("sadtalker*.mp4"))), None)
    if src is None:
        sys.exit("no input: give FILE (no sample clips found)")
    from avdetect.faces import FaceTracker
    from avdetect.forensics import analyze
    from avdetect.forensics import analysis_names
    from avdetect.forensics.audio import analyze_audio_splices, audio_frame_features, bandwidth_fact
    from avdetect.forensics.blinks import blink_evidence
    from avdetect.forensics.container import container_evidence
    from avdetect.forensics.features import face_features
    from avdetect.forensics.sync import sync_evidence, sync_track
    from avdetect.forensics.visual import track_jump_evidence, visual_change_evidence

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        make_long(src, args.minutes, path)
        minutes = load_media(path).duration / 60
        t_null, t_track, t_feat, t_ana, t_all = [], [], [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"], check=True)
            t_null.append(time.perf_counter() - t)

            t = time.perf_counter()
            for _w in FaceTracker(crops=True).iter_windows(load_media(path), window=250):
                pass
            t_track.append(time.perf_counter() - t)

            t = time.perf_counter()
            media = load_media(path)
            _ = media.audio
            ff = face_features(media)
            af = audio_frame_features(media)
            t_feat.append(time.perf_counter() - t)

            t = time.perf_counter()
            container_evidence(media.info)
            analyze_audio_splices(af)
            bandwidth_fact(af, media.info.source_sample_rate)
            track, score = sync_track(ff.mouth, ff.valid, af.speech_env, af.speech)
            sync_evidence(track, score, af.speech)
            visual_change_evidence(ff)
            track_jump_evidence(ff)
            blink_evidence(ff)
            t_ana.append(time.perf_counter() - t)

            t = time.perf_counter()
            res = analyze(load_media(path))
            t_all.append(time.perf_counter() - t)
        assert set(res.ran) == set(analysis_names()), res.skipped
    med = statistics.median
    print(f"input: {src.name} concatenated to {minutes:.2f} min ({path.suffix}, {load_media(src).info.working_size} px)")
    print(f"{'stage':<34}{'s / min of video':>18}")
    print(f"{'ffmpeg -f null decode (floor)':<34}{med(t_null) / minutes:>18.3f}")
    print(f"{'decode + face tracking (crops)':<34}{med(t_track) / minutes:>18.3f}")
    print(f"{'decode + faces + features':<34}{med(t_feat) / minutes:>18.3f}")
    print(f"{'analysis only (features given)':<34}{med(t_ana) / minutes:>18.3f}")
    print(f"{'analyze() from the file':<34}{med(t_all) / minutes:>18.3f}")
    print(f"analysis only / decode floor: {med(t_ana) / med(t_null):.2f}x;  analyze() / decode floor: {med(t_all) / med(t_null):.2f}x")
    print(f"analyze() per-stage seconds (last run): {', '.join(f'{k}={v:.2f}' for k, v in res.seconds.items())}")


if __name__ == "__main__":
    main()
