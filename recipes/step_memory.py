"""Peak memory and time of a few training steps of a recipe config's model (issue 15).

    python recipes/step_memory.py --config recipes/configs/fakeavceleb.yaml --smoke --steps 3
    python recipes/step_memory.py --config recipes/configs/lavdf.yaml --set optim.batch_size=1 --steps 2

Builds the config's model (``model`` + ``model_overrides``: window length, faces) and AdamW,
and runs ``--steps`` training steps (forward, every loss term, backward, clip, optimizer step) on
random inputs of the config's shape: ``optim.batch_size`` windows of ``window_frames`` frames,
mouth (and face) crops and audio, one fake segment per window. Memory does not depend on what
the pixels show, so random inputs measure what a real step of that shape needs. Prints one JSON
line: the shape, seconds per step, the process's peak resident memory (``ru_maxrss``, which
includes the interpreter and the weights; measured in a fresh process, so run one shape per
call) and, on CUDA, ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from avdetect.errors import AVDetectError
from avdetect.models import DetectorTargets, compute_losses, create_model
from avdetect.timegrid import frame_to_sample
from recipes.common import load_config

logger = logging.getLogger("recipes.step_memory")


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux -> GiB


def measure(cfg, steps: int = 2, device: str = "cpu") -> dict:
    """Run ``steps`` training steps of ``cfg``'s model on random inputs; return the measurements."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.model_overrides).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    b, t = int(cfg.optim.batch_size), int(model.config.window_frames)
    vis = model.config.visual
    g = torch.Generator().manual_seed(0)
    mouth = torch.randint(0, 256, (b, t, 3, vis.input_mouth_size, vis.input_mouth_size), dtype=torch.uint8, generator=g)
    face = (torch.randint(0, 256, (b, t, 3, vis.input_face_size, vis.input_face_size), dtype=torch.uint8, generator=g)
            if vis.use_face else None)
    audio = torch.randn(b, frame_to_sample(t), generator=g) * 0.1
    targets = DetectorTargets.from_segments(t, [[(t // 4, t // 2)]] * b, [[(t // 3, t // 2)]] * b,
                                            sigma=model.config.loss.boundary_sigma).to(dev)
    inputs = {"mouth": mouth.to(dev), "audio": audio.to(dev), "face": face.to(dev) if face is not None else None}
    amp = bool(cfg.optim.amp) and dev.type == "cuda"
    rss_before = _rss_gb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            out = model(inputs["mouth"], inputs["audio"], face=inputs["face"])
        losses = compute_losses(out, targets, model.config.loss)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    res = {"model": cfg.model, "window_frames": t, "batch_size": b, "use_face": bool(vis.use_face),
           "grad_checkpointing": bool(vis.grad_checkpointing), "threads": torch.get_num_threads(), "steps": steps,
           "seconds_per_step": round(min(times), 2), "rss_before_steps_gb": round(rss_before, 2),
           "peak_rss_gb": round(_rss_gb(), 2), "loss": round(float(losses["total"].detach()), 4)}
    if dev.type == "cuda":
        res["peak_cuda_allocated_gb"] = round(torch.cuda.max_memory_allocated(dev) / 1024 ** 3, 2)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML config (recipes/configs/*.yaml)")
    p.add_argument("--smoke", action="store_true", help="merge the config's 'smoke' section")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--steps", type=int, default=2, help="training steps (default 2; the first allocates)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = load_config(args.config, args.set, smoke=args.smoke)
        print(json.dumps({"config": Path(args.config).name, "smoke": args.smoke, **measure(cfg, args.steps, args.device)}))
    except AVDetectError as err:
        print(f"step_memory: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
