"""Throughput of the data pipeline: preprocessing (clips/s per core), window loading, training.

    python benchmarks/bench_data.py [--clips 12] [--model avdetect-small] [--steps 3] [--batch 8]

Generates ``--clips`` synthetic clips (or uses ``--manifest``), then prints:

* preprocess, one worker: clips/s and video seconds per second, against the baseline of a bare
  ``ffmpeg -f null`` decode of the same files (the floor: the ratio says what face tracking,
  crops and the shard writes add);
* window loading (cache read + augmentation + collate): windows/s;
* training step of ``--model`` (forward + losses + backward + AdamW): windows/s.

Figures on a shared machine are noisy: run it when the machine is quiet, or read them as bounds.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from avdetect.data import build_manifest, read_manifest
    from avdetect.data.cache import FeatureCache, preprocess
    from avdetect.data.dataset import WindowDataset, collate_windows
    from avdetect.media import ffmpeg_exe
    from avdetect.models import compute_losses, create_model

    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--manifest", help="use this manifest's clips instead of generating")
    p.add_argument("--model", default="avdetect-small")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        if args.manifest:
            entries = read_manifest(args.manifest)[: args.clips]
        else:
            from avdetect.synth import generate

            generate(Path(tmp) / "synth", n=args.clips, seed=0)
            entries = build_manifest("synthetic", Path(tmp) / "synth")
        video_s = sum(e.duration or 0 for e in entries)

        t0 = time.perf_counter()
        for e in entries:
            subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", e.path, "-f", "null", "-"], check=True)
        decode = time.perf_counter() - t0

        s = preprocess(entries, Path(tmp) / "cache", workers=1, quiet=True)
        print(f"clips: {len(entries)} ({video_s:.1f} s of video)")
        print(f"bare ffmpeg decode : {len(entries) / decode:6.2f} clips/s  ({video_s / decode:6.1f} video s/s)")
        print(f"preprocess 1 worker: {s.clips_per_second:6.2f} clips/s  ({video_s / s.seconds:6.1f} video s/s)"
              f"  = {s.seconds / decode:.1f}x the bare decode time; {s.failed} failed")

        cache = FeatureCache(Path(tmp) / "cache")
        model = create_model(args.model)
        ds = WindowDataset(entries, cache, model.config.window_frames, train=True)
        n = min(len(ds), 4 * args.batch)
        t0 = time.perf_counter()
        items = [ds[i % len(ds)] for i in range(n)]
        collate_windows(items)
        took = time.perf_counter() - t0
        print(f"window loading     : {n / took:6.1f} windows/s (read + augment + collate)")

        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = collate_windows([ds[i % len(ds)] for i in range(args.batch)])
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            out = model(batch["mouth"], batch["audio"], visual_mask=batch["visual_mask"], audio_mask=batch["audio_mask"])
            compute_losses(out, batch["targets"], model.config.loss)["total"].backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t0)
        best = min(times)
        print(f"train step {args.model}: {args.batch / best:6.2f} windows/s best of {args.steps} "
              f"({args.batch} x {model.config.window_frames} frames, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
