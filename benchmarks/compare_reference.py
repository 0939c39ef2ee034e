"""Check avdetect.metrics against the reference evaluator of AV-Deepfake1M (``ap_ar_1d``).

The reference is the compiled ``_evaluation`` module of the ``avdeepfake1m`` package, which
lives in its own environment (it is not a dependency of avdetect)::

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install numpy
    /work/venv-ref/bin/pip install --no-deps avdeepfake1m

Run from the repository root with avdetect's interpreter, giving the reference interpreter::

    python benchmarks/compare_reference.py --ref-python /work/venv-ref/bin/python [--videos 300] [--seeds 5]

For each seed it writes random ground truth (LAV-DF-like: real videos, 1-3 fake segments,
some on the 25 fps grid so that IoUs land exactly on thresholds) and random proposals (jittered
copies of true segments plus random ones, confidences with deliberate ties) to a temporary
folder, runs the reference in a subprocess (it imports the ``.so`` directly, so the package's
``__init__`` and its torch/pandas imports are not needed), computes the same metrics with
avdetect, and prints the largest absolute difference over every AP and AR of both protocols.
Exit status 0 when all agree to ``--tol`` (1e-6), 1 otherwise.

Known quirks of the reference that the generated files respect: it panics on an empty
proposal list (every video gets at least one proposal) and it holds thresholds as float32
(avdetect compares in float32 too).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdetect.metrics import PROTOCOLS, localization_metrics  # noqa: E402


REF_RUNNER = r"""
import glob, importlib.util, json, os, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
so = glob.glob(os.path.join(site, "avdeepfake1m", "_evaluation*.so"))
if not so:
    sys.exit("avdeepfake1m/_evaluation*.so not found under " + site)
spec = importlib.util.spec_from_file_location("_evaluation", so[0])
ev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ev)
pred, meta, ap_t, ar_n, ar_t = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
res = ev.ap_ar_1d(pred, meta, "file", "fake_segments", 1.0, ap_t, ar_n, ar_t)
print(json.dumps({"ap": {repr(float(k)): v for k, v in res["ap"].items()}, "ar": {str(k): v for k, v in res["ar"].items()}}))
"""


def make_case(rng: np.random.Generator, n_videos: int) -> tuple[list[dict], dict[str, list]]:
    """Random metadata (AV-Deepfake1M form) and predictions for n_videos videos."""
    metadata, predictions = [], {}
    for v in range(n_videos):
        name = f"vid_{v:05d}.mp4"
        duration = float(rng.uniform(3, 30))
        on_grid = rng.random() < 0.3  # segment edges on the 25 fps grid
        n_seg = int(rng.choice([0, 1, 1, 2, 3]))
        segs = np.sort(rng.uniform(0, duration, (n_seg, 2)), axis=1)
        if on_grid:
            segs = np.round(segs * 25) / 25
        segs = [[float(s), float(e)] for s, e in segs if e > s]
        n_prop = int(rng.integers(1, 80))
        props = []
        for _ in range(n_prop):
            if segs and rng.random() < 0.5:
                s, e = segs[int(rng.integers(len(segs)))]
                jitter = rng.normal(0, 0.05 + 0.3 * rng.random(), 2)
                if on_grid:
                    jitter = np.round(jitter * 25) / 25
                ps, pe = s + jitter[0], e + jitter[1]
                conf = 0.4 + 0.6 * rng.random()  # good proposals tend to score higher
            else:
                ps, pe = np.sort(rng.uniform(0, duration, 2))
                conf = 0.7 * rng.random()
            if pe < ps:
                ps, pe = pe, ps
            if rng.random() < 0.02:  # a few zero-length proposals
                pe = ps
            # confidences rounded to 3 decimals: many ties, all distinct values stay distinct in float32
            props.append([round(float(conf), 3), float(ps), float(pe)])
        if rng.random() < 0.5:  # usually sorted by confidence, sometimes not (order given matters)
            props.sort(key=lambda p: -p[0])
        metadata.append({"file": name, "fake_segments": segs, "split": "test", "modify_type": "real" if not segs else "visual_modified"})
        predictions[name] = props
    return metadata, predictions


def run_reference(ref_python: str, pred: Path, meta: Path, proto) -> dict:
    out = subprocess.run(
        [ref_python, "-c", REF_RUNNER, str(pred), str(meta), json.dumps(list(proto.ap_iou_thresholds)),
         json.dumps(list(proto.ar_n_proposals)), json.dumps(list(proto.ar_iou_thresholds))],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"reference failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-python", required=True, help="python of the environment with avdeepfake1m installed")
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()

    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            metadata, predictions = make_case(rng, args.videos)
            meta_path, pred_path = Path(tmp) / "meta.json", Path(tmp) / "pred.json"
            meta_path.write_text(json.dumps(metadata))
            pred_path.write_text(json.dumps(predictions))
            n_seg = sum(len(m["fake_segments"]) for m in metadata)
            n_prop = sum(len(p) for p in predictions.values())
            for proto in PROTOCOLS.values():
                ref = run_reference(args.ref_python, pred_path, meta_path, proto)
                ours = localization_metrics(
                    [predictions[m["file"]] for m in metadata], [m["fake_segments"] for m in metadata],
                    proto.ap_iou_thresholds, proto.ar_n_proposals, proto.ar_iou_thresholds,
                )
                diffs = []
                for t in proto.ap_iou_thresholds:
                    r = ref["ap"][repr(float(np.float32(t)))]
                    diffs.append(("AP", t, ours["ap"][t], r))
                for n in proto.ar_n_proposals:
                    diffs.append(("AR", n, ours["ar"][n], ref["ar"][str(n)]))
                d = max(abs(o - r) for _, _, o, r in diffs)
                worst = max(worst, d)
                detail = "  ".join(f"{k}@{x}={o:.6f}" for k, x, o, _ in diffs)
                print(f"seed {seed} {proto.name:5s} videos={args.videos} segments={n_seg} proposals={n_prop} max|diff|={d:.2e}  {detail}")
    ok = worst <= args.tol
    print(f"max abs difference over all AP and AR: {worst:.3e} ({'OK' if ok else 'FAIL'}, tol {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
