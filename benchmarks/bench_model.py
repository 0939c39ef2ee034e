"""Model speed: forward and forward+backward time per 20 s window, and parameter counts.

    python benchmarks/bench_model.py                 # tiny + small on CPU, base on GPU if present
    python benchmarks/bench_model.py --threads 2 --repeats 5 --models avdetect-tiny

For every model: parameters (total / trainable), then for one window of ``--seconds``
(default 20 s = 500 frames, batch 1, random weights and inputs) the best and the median time
of the forward pass (eval, no grad) and of forward + losses + backward (train mode). Ratios printed:
the real-time factor (window seconds / compute seconds, > 1 is faster than real time), and
the brief's check for ``avdetect-tiny``: forward + backward on 2 x 4 s clips.
Reference point (DESIGN.md §5, measured earlier on these 2 CPU cores, not in this run):
BA-TFD's model forward on one 512-frame window of 96x96 frames takes about 17 s; the
"vs BA-TFD" column scales that to the window timed here (ratio > 1: faster than BA-TFD).
Figures on a shared machine are noisy: compare numbers from the same run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdetect.faces.crops import FACE_SIZE, MOUTH_SIZE  # noqa: E402
from avdetect.models import DetectorTargets, compute_losses, create_model  # noqa: E402
from avdetect.timegrid import frame_to_sample, n_frames_for_duration  # noqa: E402

BATFD_FORWARD_S = 17.0  # DESIGN.md §5, one 512-frame (20.48 s) window, these CPUs
BATFD_WINDOW_S = 20.48


def make_inputs(model, batch: int, frames: int, device) -> dict:
    inputs = {
        "mouth": torch.randint(0, 256, (batch, frames, 3, MOUTH_SIZE, MOUTH_SIZE), dtype=torch.uint8, device=device),
        "audio": 0.1 * torch.randn(batch, frame_to_sample(frames), device=device),
    }
    if model.config.visual.use_face:
        inputs["face"] = torch.randint(0, 256, (batch, frames, 3, FACE_SIZE, FACE_SIZE), dtype=torch.uint8,
                                       device=device)
    return inputs


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device, repeats: int) -> tuple[float, float]:
    """(best, median) seconds over ``repeats`` runs after one warm-up run."""
    fn()  # warm-up (allocations, kernel selection)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def bench(name: str, device: torch.device, seconds: float, batch: int, repeats: int, amp: bool) -> dict:
    torch.manual_seed(0)
    model = create_model(name).to(device)
    frames = n_frames_for_duration(seconds)
    inputs = make_inputs(model, batch, frames, device)
    targets = DetectorTargets.from_segments(frames, [[(frames // 4, frames // 2)]] * batch, [[]] * batch).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def forward():
        model.eval()
        with torch.no_grad(), autocast:
            model(**inputs)

    def forward_backward():
        model.train()
        with autocast:
            out = model(**inputs)
            loss = compute_losses(out, targets, model.config.loss)["total"]
        loss.backward()
        model.zero_grad(set_to_none=True)

    fwd_best, fwd_median = time_it(forward, device, repeats)
    bwd_best, bwd_median = time_it(forward_backward, device, repeats)
    result = {"model": name, "device": str(device), "frames": frames, "batch": batch,
              "params": model.num_parameters(), "trainable": model.num_parameters(trainable_only=True),
              "forward_s": fwd_best, "forward_median_s": fwd_median,
              "forward_backward_s": bwd_best, "forward_backward_median_s": bwd_median}
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["avdetect-tiny", "avdetect-small"],
                   help="models timed on CPU (default: tiny, small); base is timed on GPU when present")
    p.add_argument("--seconds", type=float, default=20.0, help="window length in seconds (default 20)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU run even when CUDA is available")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the GPU run")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, window {args.seconds:g} s, "
          f"batch {args.batch}, {args.repeats} timed runs after one warm-up")

    print("\nparameters")
    for name in ["avdetect-tiny", "avdetect-small", "avdetect-base"]:
        m = create_model(name)
        print(f"  {name:16s} {m.num_parameters():>12,d} total  {m.num_parameters(trainable_only=True):>12,d} trainable")
        del m

    runs = [(name, torch.device("cpu"), False) for name in args.models]
    if torch.cuda.is_available() and not args.no_gpu:
        runs += [(name, torch.device("cuda"), args.amp) for name in ["avdetect-small", "avdetect-base"]]
    print(f"\ntime per {args.seconds:g} s window: best of {args.repeats} (median in brackets)")
    print(f"  {'model':16s} {'device':6s} {'forward':>17s} {'x real-time':>11s} {'vs BA-TFD':>9s} "
          f"{'fwd+bwd':>17s} {'x real-time':>11s}")
    for name, device, amp in runs:
        r = bench(name, device, args.seconds, args.batch, args.repeats, amp)
        window = args.seconds * args.batch
        extra = f"  peak {r['peak_mem_gib']:.1f} GiB" if "peak_mem_gib" in r else ""
        print(f"  {name:16s} {device.type:6s} {r['forward_s']:7.3f}s ({r['forward_median_s']:6.3f}s) "
              f"{window / r['forward_s']:10.1f}x {BATFD_FORWARD_S * window / BATFD_WINDOW_S / r['forward_s']:8.1f}x "
              f"{r['forward_backward_s']:7.3f}s ({r['forward_backward_median_s']:6.3f}s) "
              f"{window / r['forward_backward_s']:10.1f}x{extra}")

    # the brief's check: tiny forward + backward on 2 clips of 4 s on CPU
    r = bench("avdetect-tiny", torch.device("cpu"), 4.0, 2, args.repeats, False)
    print(f"\navdetect-tiny, 2 x 4 s on CPU: forward {r['forward_s']:.3f}s ({r['forward_median_s']:.3f}s), "
          f"forward+backward {r['forward_backward_s']:.3f}s ({r['forward_backward_median_s']:.3f}s) (target < 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
