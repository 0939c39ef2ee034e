"""Train the joint audio-visual detector on a preprocessed manifest.

    python recipes/train.py --config recipes/configs/synthetic.yaml
    torchrun --nproc_per_node 4 recipes/train.py --config recipes/configs/lavdf.yaml   # DDP
    python recipes/train.py --resume runs/lavdf                                          # continue

YAML over the dataclass defaults of :mod:`recipes.common` (``--set optim.lr=1e-4`` overrides
one key). The run folder (``out_dir``) receives ``config.yaml`` (resolved), ``train_log.csv``,
``val_log.csv``, TensorBoard events when tensorboard is installed, ``checkpoints/step_N/``
(model via ``save_pretrained`` + optimizer/RNG state in safetensors/JSON; the last
``keep_last`` are kept), ``best/`` (the best validation checkpoint) and ``latest.json``.

Distributed: under ``torchrun`` each rank trains on its share of every epoch (gloo on CPU,
nccl on GPU); rank 0 validates, logs and writes checkpoints. bfloat16 autocast on GPU.
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `recipes` and the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.distributed as dist

from avdetect.data.cache import FeatureCache
from avdetect.data.dataset import EpochSampler, WindowDataset, collate_windows
from avdetect.data.forgery import ForgeryWindowDataset
from avdetect.data.manifest import read_manifest
from avdetect.data.predict import predict_entries, score_predictions
from avdetect.errors import AVDetectError, ConfigError
from avdetect.models import AVDetector, compute_losses, create_model
from recipes.common import TrainConfig, load_config, load_training_state, save_config, save_training_state

logger = logging.getLogger("recipes.train")


def lr_at(step: int, cfg) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine down to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / max(1, cfg.warmup_steps)
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, max(0.0, t))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _setup_distributed(device_pref: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_pref == "auto" else device_pref == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but CUDA is not available")
    device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, device


class _Logs:
    """CSV logs (always) and TensorBoard (when importable) on rank 0."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self.out = out
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                logger.info("tensorboard is not installed: CSV logs only")

    def write(self, name: str, step: int, values: dict) -> None:
        if not self.enabled:
            return
        path = self.out / f"{name}_log.csv"
        row = {"step": step, **values}
        new = not path.is_file()
        with path.open("a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{name}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def validate(model: AVDetector, cfg: TrainConfig, cache: FeatureCache, entries, device) -> dict:
    """Proposals and clip scores on the validation clips -> flat metric dict (``ap@0.5``, ...)."""
    # the clip score that model selection ranks on is detect's (same engine, float32)
    preds = predict_entries(model, cache, entries, device=device, hop=cfg.data.eval_hop,
                            batch_size=cfg.optim.batch_size)
    res = score_predictions(entries, preds, cfg.protocol)
    flat = {f"ap@{t:g}": v for t, v in res["ap"].items()}
    flat.update({f"ar@{n}": v for n, v in res["ar"].items()})
    for k in ("auc", "accuracy", "eer"):
        if k in res:
            flat[k] = res[k]
    flat["n_videos"] = res["n_videos"]
    return flat


def _save_checkpoint(model: AVDetector, optimizer, folder: Path, info: dict) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    save_training_state(tmp, optimizer, info)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def train(cfg: TrainConfig, resume: str | None = None, quiet: bool = False) -> dict:
    rank, world, device = _setup_distributed(cfg.device)
    main_rank = rank == 0
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out_dir)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    seed_everything(cfg.seed + rank)

    model = create_model(cfg.model, **cfg.model_overrides)
    if cfg.init_checkpoint and not resume:
        init = AVDetector.from_pretrained(cfg.init_checkpoint)
        if init.config.to_dict() != model.config.to_dict():
            raise ConfigError(f"init_checkpoint {cfg.init_checkpoint} has another architecture than {cfg.model}")
        model.load_state_dict(init.state_dict())
        logger.info("initialised from %s", cfg.init_checkpoint)
    start_step, start_info = 0, {}
    ckpt_dir = None
    if resume:
        latest = out / "latest.json"
        if not latest.is_file():
            raise ConfigError(f"nothing to resume: {latest} does not exist")
        ckpt_dir = out / json.loads(latest.read_text(encoding="utf-8"))["checkpoint"]
        model = AVDetector.from_pretrained(ckpt_dir)
    model.to(device).train()
    window = int(model.config.window_frames)
    use_face = bool(model.config.visual.use_face)

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or n.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.optim.lr, betas=cfg.optim.betas)
    if ckpt_dir is not None:
        start_info = load_training_state(ckpt_dir, optimizer)
        start_step = int(start_info["step"])
        logger.info("resumed from %s at step %d", ckpt_dir, start_step)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=cfg.find_unused_parameters)

    entries = read_manifest(cfg.data.manifest)
    cache = FeatureCache(cfg.data.cache)
    # the checkpoint records the face backend its crops come from: detect tracks faces with the same one
    model.config.visual.face_backend = str(cache.info.get("backend", "opencv"))
    cache.check(model_config=model.config)  # crop sizes, decode size and face backend agree
    train_entries = [e for e in entries if e.split == cfg.data.train_split]
    val_cache = FeatureCache(cfg.data.val_cache, model_config=model.config) if cfg.data.val_cache else cache
    val_pool = read_manifest(cfg.data.val_manifest) if cfg.data.val_manifest else entries
    val_entries = [e for e in val_pool if e.split == cfg.data.val_split and e.file in val_cache]
    if cfg.data.max_val_clips:
        val_entries = val_entries[: cfg.data.max_val_clips]
    if not train_entries:
        raise ConfigError(f"no clip of split {cfg.data.train_split!r} in {cfg.data.manifest}")
    if cfg.forge.enabled:
        ds = ForgeryWindowDataset(train_entries, cache, window, forge=cfg.forge, augment=cfg.augment, use_face=use_face,
                                  seed=cfg.seed)
    else:
        ds = WindowDataset(train_entries, cache, window, train=True, augment=cfg.augment, use_face=use_face, seed=cfg.seed)
    sampler = EpochSampler(ds.labels, balanced=cfg.data.balanced, rank=rank, world=world, seed=cfg.seed)
    collate = functools.partial(collate_windows, sigma=model.config.loss.boundary_sigma)
    bs, accum = cfg.optim.batch_size, cfg.optim.accumulate
    micro_per_epoch = len(sampler) // bs  # drop_last: equal step counts on every rank
    steps_per_epoch = micro_per_epoch // accum
    if steps_per_epoch < 1:
        raise ConfigError(f"{len(train_entries)} training clips over {world} rank(s) make no full step of "
                          f"{bs} x {accum} windows: lower optim.batch_size / optim.accumulate")
    amp = cfg.optim.amp and device.type == "cuda"
    logs = _Logs(out, main_rank)
    best = float(start_info.get("best", float("-inf")))
    step = start_step
    from tqdm import tqdm

    bar = tqdm(total=cfg.optim.max_steps, initial=step, desc="train", unit="step", disable=quiet or not main_rank)
    t_last, windows_since = time.perf_counter(), 0
    running: dict[str, float] = {}
    n_running = 0

    def checkpoint(tag_best: bool, metrics: dict | None = None) -> None:
        nonlocal best
        info = {"step": step, "best": best, "world_size": world, "config_model": cfg.model}
        folder = out / "checkpoints" / f"step_{step:07d}"
        _save_checkpoint(model, optimizer, folder, info)
        (out / "latest.json").write_text(json.dumps({"checkpoint": str(folder.relative_to(out)), "step": step}) + "\n")
        kept = sorted((out / "checkpoints").glob("step_*"))
        for old in kept[: max(0, len(kept) - cfg.keep_last)]:
            shutil.rmtree(old)
        if tag_best:
            model.save_pretrained(out / "best")
            (out / "best" / "metrics.json").write_text(json.dumps({"step": step, **(metrics or {})}, indent=1) + "\n")

    while step < cfg.optim.max_steps:
        epoch, within = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, skip=within * accum * bs)
        ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(ds, batch_size=bs, sampler=sampler, collate_fn=collate, drop_last=True,
                                             num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
        it = iter(loader)
        for _ in range(within, steps_per_epoch):
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, cfg.optim)
            optimizer.zero_grad(set_to_none=True)
            for micro in range(accum):
                batch = next(it)
                targets = batch["targets"].to(device)
                inputs = {k: (batch[k].to(device, non_blocking=True) if batch[k] is not None else None)
                          for k in ("mouth", "audio", "face", "visual_mask", "audio_mask")}
                if inputs["mouth"] is None:
                    inputs["visual_mask"] = None
                if inputs["audio"] is None:
                    inputs["audio_mask"] = None
                sync_ctx = ddp_model.no_sync() if (world > 1 and micro < accum - 1) else _null()
                with sync_ctx:
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                        outputs = ddp_model(inputs["mouth"], inputs["audio"], face=inputs["face"],
                                            visual_mask=inputs["visual_mask"], audio_mask=inputs["audio_mask"])
                    losses = compute_losses(outputs, targets, model.config.loss)
                    (losses["total"] / accum).backward()
                for k, v in losses.items():
                    running[k] = running.get(k, 0.0) + float(v.detach())
                n_running += 1
                windows_since += bs * world
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            step += 1
            bar.update()
            if main_rank and (step % cfg.log_every == 0 or step == cfg.optim.max_steps):
                now = time.perf_counter()
                row = {k: v / n_running for k, v in running.items()}
                row.update(epoch=epoch, lr=optimizer.param_groups[0]["lr"], windows_per_s=windows_since / (now - t_last))
                logs.write("train", step, row)
                bar.set_postfix(loss=f"{row['total']:.3f}", win_s=f"{row['windows_per_s']:.1f}", refresh=False)
                running, n_running, t_last, windows_since = {}, 0, now, 0
            do_val = val_entries and (step % cfg.val_every == 0 or step == cfg.optim.max_steps)
            do_ckpt = step % cfg.ckpt_every == 0 or step == cfg.optim.max_steps or do_val
            if (do_val or do_ckpt) and world > 1:
                dist.barrier()
            if main_rank and (do_val or do_ckpt):
                metrics = None
                is_best = False
                if do_val:
                    t0 = time.perf_counter()
                    metrics = validate(model, cfg, val_cache, val_entries, device)
                    metrics["seconds"] = time.perf_counter() - t0
                    model.train()
                    logs.write("val", step, metrics)
                    value = metrics.get(cfg.best_metric, float("nan"))
                    if isinstance(value, float) and math.isfinite(value) and value > best:
                        best, is_best = value, True
                    logger.info("step %d validation: %s", step, {k: round(v, 4) for k, v in metrics.items()})
                checkpoint(is_best, metrics)
                t_last = time.perf_counter()  # validation time is not training throughput
            if (do_val or do_ckpt) and world > 1:
                dist.barrier()
            if step >= cfg.optim.max_steps:
                break
    bar.close()
    logs.close()
    if world > 1:
        dist.destroy_process_group()
    return {"step": step, "best": best, "out_dir": str(out)}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (recipes/configs/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.max_steps=100 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint "
                   "(its config.yaml is used; --set still applies)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.resume:
            cfg = load_config(Path(args.resume) / "config.yaml", args.set)
            cfg.out_dir = str(args.resume)
        else:
            cfg = load_config(args.config, args.set)
        result = train(cfg, resume=args.resume, quiet=args.quiet)
    except AVDetectError as err:
        print(f"train: error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
