"""A tiny detector trained in minutes on a few synthetic clips, for tests and local checks.

Not the shipped checkpoint (that one is trained by ``recipes/train.py``): a plain loop over
``compute_losses`` on crops made by the same face tracker ``detect`` uses, so the tests that
need a model which has learned something (segments found, real clips clean) run offline.

    python tests/tiny_detector.py OUT_DIR [--clips 8] [--steps 300]
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from avdetect.faces import FaceTracker
from avdetect.media import load_media
from avdetect.models import DetectorTargets, compute_losses, create_model
from avdetect.synth import ClipSpec, Manipulation, render_clip
from avdetect.timegrid import SAMPLES_PER_FRAME, seconds_to_frames_round

log = logging.getLogger(__name__)

# kinds cycled over the training clips (and their segments, seconds)
PLAN = [
    ("both", [(1.0, 2.2)]), ("real", None), ("visual", [(2.4, 3.6)]), ("audio", [(0.8, 2.0)]),
    ("both", [(3.0, 4.4)]), ("real", None), ("visual", [(0.6, 1.6), (3.4, 4.6)]), ("audio", [(2.6, 4.0)]),
    ("both", [(0.4, 1.4), (2.8, 3.8)]), ("real", None), ("visual", [(1.6, 3.0)]), ("audio", [(3.2, 4.6)]),
]


def render_training_clips(folder: Path, n: int, seed: int = 100, duration: float = 5.0) -> list[tuple[Path, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        kind, segs = PLAN[k % len(PLAN)]
        man = Manipulation(kind=kind, strength=0.9, segments=segs) if kind != "real" else Manipulation(kind="real")
        path = folder / f"train_{k:02d}.mp4"
        truth = render_clip(path, ClipSpec(seed=seed + k, duration=duration, size=256, crf=23, manipulation=man))
        out.append((path, truth))
    return out


def clip_arrays(path: Path):
    """(mouth (T, 3, 96, 96) uint8, valid (T,), audio (T * 640,)) exactly as detect() builds them."""
    media = load_media(path, max_side=640)
    track = FaceTracker(crops=True).track(media)
    n = media.n_frames
    wav = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
    a = media.audio[: len(wav)]
    wav[: len(a)] = a
    return torch.from_numpy(track.mouth).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(track.valid), torch.from_numpy(wav)


def train_tiny(out_dir: Path, clips: list[tuple[Path, object]], steps: int = 300, window: int = 100,
               batch: int = 4, seed: int = 0, lr: float = 3e-3) -> Path:
    """Train ``avdetect-tiny`` on random windows of ``clips`` and save it to ``out_dir``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = []
    for path, truth in clips:
        mouth, valid, wav = clip_arrays(path)
        vis = [(seconds_to_frames_round(a), seconds_to_frames_round(b)) for a, b in truth.visual_fake_segments]
        aud = [(seconds_to_frames_round(a), seconds_to_frames_round(b)) for a, b in truth.audio_fake_segments]
        data.append((mouth, valid, wav, vis, aud))
    model = create_model("avdetect-tiny", window_frames=window)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, len(data), size=batch)
        ms, vs, ws, vsegs, asegs = [], [], [], [], []
        for i in idx:
            mouth, valid, wav, vis, aud = data[i]
            n = len(valid)
            s = int(rng.integers(0, max(1, n - window + 1)))
            m = torch.zeros((window, *mouth.shape[1:]), dtype=torch.uint8)
            v = torch.zeros(window, dtype=torch.bool)
            w = torch.zeros(window * SAMPLES_PER_FRAME)
            e = min(n, s + window)
            m[: e - s], v[: e - s] = mouth[s:e], valid[s:e]
            w[: (e - s) * SAMPLES_PER_FRAME] = wav[s * SAMPLES_PER_FRAME: e * SAMPLES_PER_FRAME]
            ms.append(m), vs.append(v), ws.append(w)
            vsegs.append([(a - s, b - s) for a, b in vis])
            asegs.append([(a - s, b - s) for a, b in aud])
        lengths = [min(window, len(data[i][1]) - 0) for i in idx]
        targets = DetectorTargets.from_segments(window, vsegs, asegs, lengths=lengths)
        am = torch.stack([torch.arange(window) < L for L in lengths])
        out = model(torch.stack(ms), torch.stack(ws), visual_mask=torch.stack(vs) & am, audio_mask=am)
        loss = compute_losses(out, targets, model.config.loss)["total"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log.info("step %d loss %.3f (%.0f s)", step, float(loss.detach()), time.perf_counter() - t0)
    model.eval()
    return model.save_pretrained(out_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    clips = render_training_clips(out / "clips", args.clips)
    train_tiny(out / "model", clips, steps=args.steps)
    (out / "model" / "MODEL_CARD.md").write_text(
        "# tiny test detector\n\navdetect-tiny trained by tests/tiny_detector.py on "
        f"{args.clips} synthetic clips for {args.steps} steps. For tests only.\n", encoding="utf-8")


if __name__ == "__main__":
    main()
