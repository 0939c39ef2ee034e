"""Train the joint audio-visual detector on a preprocessed manifest.

    python recipes/train.py --config recipes/configs/synthetic.yaml
    torchrun --nproc_per_node 4 recipes/train.py --config recipes/configs/lavdf.yaml   # DDP
    python recipes/train.py --resume runs/lavdf                                          # continue
    python recipes/train.py --config recipes/configs/lavdf.yaml --smoke                  # CPU smoke run

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
import dataclasses
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
from avdetect.data.dataset import EpochSampler, WindowDataset, collate_windows, complete_segments
from avdetect.data.forgery import ForgeryWindowDataset
from avdetect.data.manifest import LABEL_UNKNOWN, read_manifest, sample_entries
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


LR_SCALING = ("none", "linear", "sqrt")


def scaled_lr(optim, world: int) -> float:
    """The peak learning rate in effect on ``world`` ranks (``optim.scale_lr``, recipes/common.py)."""
    if optim.scale_lr not in LR_SCALING:
        raise ConfigError(f"optim.scale_lr must be one of {', '.join(LR_SCALING)}, got {optim.scale_lr!r}")
    if int(optim.reference_world_size) < 1:
        raise ConfigError("optim.reference_world_size must be >= 1")
    ratio = world / int(optim.reference_world_size)
    return optim.lr * (1.0 if optim.scale_lr == "none" else ratio if optim.scale_lr == "linear" else math.sqrt(ratio))


def select_entries(cfg: TrainConfig) -> tuple[list, list]:
    """The training clips and the validation candidates of ``cfg``, checked before anything is
    built or written: a split that the manifest does not hold is a :class:`ConfigError` naming
    the splits it does hold (a mistyped ``data.val_split`` would otherwise train without
    validation and end with ``best: -Infinity``); unlabelled clips are refused in both."""
    entries = read_manifest(cfg.data.manifest)

    def splits(pool) -> str:
        return ", ".join(sorted({e.split for e in pool}))

    train_entries = [e for e in entries if e.split == cfg.data.train_split]
    if not train_entries:
        raise ConfigError(f"data.train_split {cfg.data.train_split!r}: no clip of that split in {cfg.data.manifest}; "
                          f"its splits are {splits(entries)}")
    val_entries: list = []
    if cfg.data.val_split is None:
        logger.warning("data.val_split is null: training without validation (no val_log.csv, no best/)")
    else:
        where = cfg.data.val_manifest or cfg.data.manifest
        pool = read_manifest(cfg.data.val_manifest) if cfg.data.val_manifest else entries
        val_entries = [e for e in pool if e.split == cfg.data.val_split]
        if not val_entries:
            raise ConfigError(f"data.val_split {cfg.data.val_split!r}: no clip of that split in {where}; its splits are "
                              f"{splits(pool)} (or set data.val_split to null to train without validation)")
    for name, chosen in (("train_split", train_entries), ("val_split", val_entries)):
        unlabelled = [e.file for e in chosen if e.label == LABEL_UNKNOWN]
        if unlabelled:
            raise ConfigError(f"data.{name} {getattr(cfg.data, name)!r} holds {len(unlabelled)} unlabelled clips (e.g. "
                              f"{unlabelled[0]!r}: a test set without public labels); predict them with "
                              "recipes/evaluate.py instead")
    if cfg.data.val_split is not None and cfg.data.val_split == cfg.data.train_split and not cfg.data.val_manifest:
        logger.warning("data.val_split is the training split %r: validation measures fit, not generalisation",
                       cfg.data.train_split)
    return train_entries, val_entries


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
    train_entries, val_entries = select_entries(cfg)  # bad split names stop here, before anything is written
    scaled_lr(cfg.optim, 1)  # and a bad optim.scale_lr
    rank, world, device = _setup_distributed(cfg.device)
    main_rank = rank == 0
    sched = dataclasses.replace(cfg.optim, lr=scaled_lr(cfg.optim, world))  # the lr schedule in effect
    if main_rank:
        logger.info("learning rate %.3g on %d rank(s) (optim.lr %.3g at reference_world_size %d, scale_lr %s); "
                    "global batch %d windows per step (%d per rank x %d micro-batches x %d ranks)", sched.lr, world,
                    cfg.optim.lr, cfg.optim.reference_world_size, cfg.optim.scale_lr,
                    cfg.optim.batch_size * cfg.optim.accumulate * world, cfg.optim.batch_size, cfg.optim.accumulate,
                    world)
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
                                   {"params": no_decay, "weight_decay": 0.0}], lr=sched.lr, betas=cfg.optim.betas)
    if ckpt_dir is not None:
        start_info = load_training_state(ckpt_dir, optimizer)
        start_step = int(start_info["step"])
        logger.info("resumed from %s at step %d", ckpt_dir, start_step)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=cfg.find_unused_parameters)

    cache = FeatureCache(cfg.data.cache)
    # the checkpoint records the face backend its crops come from: detect tracks faces with the same one
    model.config.visual.face_backend = str(cache.info.get("backend", "opencv"))
    cache.check(model_config=model.config)  # crop sizes, decode size and face backend agree
    val_cache = FeatureCache(cfg.data.val_cache, model_config=model.config) if cfg.data.val_cache else cache
    if val_entries:
        cached = [e for e in val_entries if e.file in val_cache]
        if not cached:
            raise ConfigError(f"none of the {len(val_entries)} clips of data.val_split {cfg.data.val_split!r} is in "
                              f"the cache {val_cache.root}: preprocess them (or set data.val_split to null)")
        # a seeded sample stratified by label and category, the same at every validation
        val_entries = sample_entries(complete_segments(cached, val_cache), cfg.data.max_val_clips, seed=cfg.seed)
        n_fake = sum(e.label for e in val_entries)
        if main_rank:
            logger.info("validation: %d clips of split %r (%d fake)", len(val_entries), cfg.data.val_split, n_fake)
            if n_fake in (0, len(val_entries)):
                logger.warning("the %d validation clips are all %s: %s is undefined there, so best/ may never be "
                               "written (raise data.max_val_clips)", len(val_entries), "real" if not n_fake else "fake",
                               "ap/ar" if not n_fake else "auc/eer")
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
        info = {"step": step, "best": best, "world_size": world, "config_model": cfg.model, "lr": sched.lr}
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
                g["lr"] = lr_at(step, sched)
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
    p.add_argument("--smoke", action="store_true", help="merge the config's 'smoke' section (a short run that fits "
                   "a 24 GB CPU machine; recipes/README.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.resume:
            cfg = load_config(Path(args.resume) / "config.yaml", args.set)
            cfg.out_dir = str(args.resume)
        else:
            cfg = load_config(args.config, args.set, smoke=args.smoke)
        result = train(cfg, resume=args.resume, quiet=args.quiet)
    except AVDetectError as err:
        print(f"train: error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
