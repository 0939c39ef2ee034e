"""How long does AP/AR evaluation take at AV-Deepfake1M scale?

    OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [--videos 100000] [--proposals 100]
                                                         [--ref-python /work/venv-ref/bin/python]

Generates ``--videos`` random videos (a third real, the rest with 1-3 fake segments) with
``--proposals`` proposals each, then times, on one core:

* ``avdetect.metrics.localization_metrics`` with the AV-Deepfake1M protocol (4 AP thresholds,
  5 N x 10 AR thresholds) and with the LAV-DF protocol;
* a baseline in the same run: a per-video Python loop (the structure of LAV-DF's
  ``metrics.py``, numpy inside each video) on a subset, extrapolated linearly;
* optionally the reference Rust evaluator (``ap_ar_1d`` of ``avdeepfake1m``, see
  ``compare_reference.py``) on the same data written to JSON, with ``RAYON_NUM_THREADS=1``;
  its time includes its own JSON parsing, so ours is also given with JSON parsing.

Figures are wall-clock seconds on a shared machine: expect noise.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdetect.metrics import AV1M, LAVDF, iou_1d, localization_metrics  # noqa: E402


def make_data(n_videos: int, n_props: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    props, gts = [], []
    for _ in range(n_videos):
        dur = rng.uniform(5, 30)
        n_seg = int(rng.choice([0, 1, 1, 2, 3]))
        g = np.sort(rng.uniform(0, dur, (n_seg, 2)), axis=1)
        se = np.sort(rng.uniform(0, dur, (n_props, 2)), axis=1)
        if n_seg:  # half of the proposals near a true segment
            k = n_props // 2
            pick = g[rng.integers(n_seg, size=k)]
            se[:k] = np.sort(pick + rng.normal(0, 0.2, (k, 2)), axis=1)
        conf = np.sort(rng.random(n_props))[::-1]
        props.append(np.column_stack([conf, se]))
        gts.append(g)
    return props, gts


def baseline_loop(props, gts, proto) -> None:
    """Per-video Python loop (LAV-DF metrics.py structure), numpy inside each video."""
    f32 = np.float32
    for t in proto.ap_iou_thresholds:
        vals, n_labels = [], 0
        for p, g in zip(props, gts):
            n_labels += len(g)
            iou = iou_1d(p[:, 1:], g) if len(g) else np.zeros((len(p), 0), np.float32)
            hit = iou > f32(t)
            taken: list[int] = []
            for j in range(len(g)):
                for i in np.flatnonzero(hit[:, j]):
                    if i not in taken:
                        taken.append(int(i))
                        break
            tp = np.zeros(len(p), bool)
            tp[taken] = True
            vals.append(np.column_stack([p[:, 0], tp]))
        v = np.concatenate(vals)
        v = v[np.argsort(-v[:, 0], kind="stable")]
        acc = np.cumsum(v[:, 1])
        _ = (acc / np.arange(1, len(acc) + 1), acc / n_labels)
    for p, g in zip(props, gts):
        if len(g):
            iou = iou_1d(p[: max(proto.ar_n_proposals), 1:], g)
            best = np.maximum.accumulate(iou, axis=0)
            _ = [(best[min(n, len(p)) - 1] > f32(t)).sum() for t in proto.ar_iou_thresholds for n in proto.ar_n_proposals]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=100_000)
    ap.add_argument("--proposals", type=int, default=100)
    ap.add_argument("--baseline-videos", type=int, default=3000)
    ap.add_argument("--ref-python", help="python with avdeepfake1m installed (optional)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    props, gts = make_data(args.videos, args.proposals)
    n_seg = sum(len(g) for g in gts)
    print(f"data: {args.videos} videos x {args.proposals} proposals, {n_seg} segments (made in {time.perf_counter() - t0:.1f} s)")

    for proto in (AV1M, LAVDF):
        t0 = time.perf_counter()
        res = localization_metrics(props, gts, proto.ap_iou_thresholds, proto.ar_n_proposals, proto.ar_iou_thresholds)
        ours = time.perf_counter() - t0
        print(f"avdetect {proto.name:5s}: {ours:6.2f} s   AP={ {k: round(v, 4) for k, v in res['ap'].items()} }")

    nb = min(args.baseline_videos, args.videos)
    t0 = time.perf_counter()
    baseline_loop(props[:nb], gts[:nb], AV1M)
    base = (time.perf_counter() - t0) * args.videos / nb
    t0 = time.perf_counter()
    localization_metrics(props, gts, AV1M.ap_iou_thresholds, AV1M.ar_n_proposals, AV1M.ar_iou_thresholds)
    ours = time.perf_counter() - t0
    print(f"baseline per-video loop (av1m), measured on {nb} videos, scaled: {base:7.1f} s  -> avdetect is {base / ours:.0f}x faster")

    if args.ref_python:
        from compare_reference import REF_RUNNER  # same folder

        with tempfile.TemporaryDirectory() as tmp:
            meta, pred = Path(tmp) / "m.json", Path(tmp) / "p.json"
            names = [f"v{i}.mp4" for i in range(args.videos)]
            meta.write_text(json.dumps([{"file": n, "fake_segments": g.tolist()} for n, g in zip(names, gts)]))
            pred.write_text(json.dumps({n: p.tolist() for n, p in zip(names, props)}))
            env = dict(os.environ, RAYON_NUM_THREADS="1")
            t0 = time.perf_counter()
            subprocess.run([args.ref_python, "-c", REF_RUNNER, str(pred), str(meta), json.dumps(list(AV1M.ap_iou_thresholds)),
                            json.dumps(list(AV1M.ar_n_proposals)), json.dumps(list(AV1M.ar_iou_thresholds))],
                           check=True, env=env, capture_output=True)
            ref = time.perf_counter() - t0
            from avdetect.evaluation import evaluate_files

            t0 = time.perf_counter()
            evaluate_files(meta, pred, protocol="av1m")
            ours_io = time.perf_counter() - t0
            print(f"reference ap_ar_1d (Rust, 1 thread, incl. JSON): {ref:6.1f} s ; avdetect evaluate_files incl. JSON: {ours_io:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
