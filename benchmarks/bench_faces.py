"""Face backends on real footage: faces found, suspect boxes, milliseconds per frame.

    python benchmarks/bench_faces.py [--backends opencv,mediapipe] [--frames 150] [--sheet DIR]

For every clip of ``../shared/samples``, ``../shared/realfaces/real`` and
``../shared/realfaces/dev_fakes`` (first ``--frames`` frames), each backend tracks faces with the
tracker's defaults (what preprocessing and detect use). Printed per clip and in total:

* **found**: frames with a face box (every clip shows one talking face throughout);
* **suspect**: frames where this backend's box does not overlap the other backend's box (IoU
  < 0.1) or the other backend saw no face: the candidates for a box where there is no face.
  With ``--sheet DIR`` a contact sheet of each backend's suspect crops (up to 24 per clip) is
  written there, to be checked by eye: a suspect crop showing a face is not a false box;
* **ms/frame**: tracking time per frame in the same run (decode included, crops included).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avdetect.faces import FaceTracker  # noqa: E402
from avdetect.faces.tracking import iou  # noqa: E402
from avdetect.media import load_media  # noqa: E402

SHARED = ROOT.parent / "shared"
GROUPS = (("samples", SHARED / "samples"), ("real", SHARED / "realfaces" / "real"),
          ("dev_fakes", SHARED / "realfaces" / "dev_fakes"))
VIDEO = {".mp4", ".mov", ".mkv", ".mpg", ".avi", ".webm"}


def track(path: Path, backend: str, frames: int):
    media = load_media(path)
    stop = min(media.n_frames, frames)
    t0 = time.perf_counter()
    tr = FaceTracker(backend=backend, crops=True).track(media, stop=stop)
    return tr, (time.perf_counter() - t0) / max(1, stop)


def sheet(crops: list[np.ndarray], out: Path) -> None:
    import cv2

    if not crops:
        return
    rows = [np.concatenate(crops[i:i + 8] + [np.zeros_like(crops[0])] * (8 - len(crops[i:i + 8])), axis=1)
            for i in range(0, len(crops), 8)]
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="opencv,mediapipe")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--sheet", type=Path, help="write contact sheets of suspect crops here")
    args = p.parse_args(argv)
    names = args.backends.split(",")
    if len(names) != 2:
        sys.exit("give two backends: suspect boxes are judged against each other")
    if args.sheet:
        args.sheet.mkdir(parents=True, exist_ok=True)
    totals = {g: {b: [0, 0, 0, 0.0, 0] for b in names} for g, _ in GROUPS}  # frames, found, suspect, seconds, clips
    print(f"{'clip':34s} " + " ".join(f"{b + ' found':>15s} {'suspect':>8s} {'ms/frame':>8s}" for b in names))
    for group, folder in GROUPS:
        clips = sorted(q for q in folder.glob("*") if q.suffix.lower() in VIDEO) if folder.is_dir() else []
        for clip in clips:
            res = {b: track(clip, b, args.frames) for b in names}
            row = f"{group[:4]}/{clip.name[:29]:29s} "
            for b, other in (names, names[::-1]):
                tr, ms = res[b]
                ot = res[other][0]
                n = len(tr.valid)
                suspect = [i for i in np.flatnonzero(tr.valid)
                           if i >= len(ot.valid) or not ot.valid[i] or iou(tr.boxes[i], ot.boxes[i]) < 0.1]
                t = totals[group][b]
                t[0] += n
                t[1] += int(tr.valid.sum())
                t[2] += len(suspect)
                t[3] += ms * n
                t[4] += 1
                row += f"{tr.valid.mean():15.1%} {len(suspect):8d} {1000 * ms:8.1f} "
                if args.sheet and suspect:
                    pick = suspect[:: max(1, len(suspect) // 24)][:24]
                    sheet([tr.face[i] for i in pick], args.sheet / f"{group}_{clip.stem}_{b}.png")
            print(row)
    print()
    for group, _ in GROUPS:
        for b in names:
            n, found, suspect, secs, clips = totals[group][b]
            if n:
                print(f"{group:10s} {b:10s} clips {clips:3d}  frames {n:6d}  found {found / n:6.1%}  "
                      f"suspect {suspect:5d} ({suspect / n:5.1%})  {1000 * secs / n:6.1f} ms/frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
