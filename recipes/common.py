"""Shared pieces of the recipes: configuration dataclasses, YAML loading, training state I/O.

A recipe config is YAML over these dataclass defaults: only the keys that differ need to be
written; an unknown key is an error (a typo must not silently train the wrong thing).

A config may hold a ``smoke:`` mapping, in the same shape, that ``--smoke`` merges over it: the
settings of a short run of the same recipe that fits a 24 GB CPU machine (window, batch, steps;
recipes/README.md has the measured peak memory). Its keys are checked whether or not it is used.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from avdetect.data.dataset import AugmentConfig
from avdetect.data.forgery import ForgeConfig
from avdetect.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)


@dataclass
class DataConfig:
    manifest: str = ""  # JSONL from `avdetect manifest`
    cache: str = ""  # folder from `avdetect preprocess`
    train_split: str = "train"
    val_split: str | None = "dev"  # must exist in the (val) manifest, else a ConfigError; null: no validation
    val_manifest: str | None = None  # validate on another manifest + cache (e.g. forged dev files); None: the same
    val_cache: str | None = None
    balanced: bool = False  # class-balanced sampling (with replacement)
    num_workers: int = 0  # DataLoader worker processes per rank
    eval_hop: int | None = None  # frames between validation window starts (None: detect's default)
    max_val_clips: int | None = None  # validate on N clips of val_split, a sample stratified by label and category
    # drawn with `seed` (the same clips at every validation and on every rerun; None: all)


@dataclass
class OptimConfig:
    lr: float = 3e-4  # peak learning rate at reference_world_size ranks (see scale_lr)
    # How lr follows the number of ranks (GPUs / processes) a run has: "none" (lr as written,
    # whatever the world size), "linear" (lr * world / reference_world_size: the global batch
    # grows with the ranks) or "sqrt". The lr in effect is logged and written to train_log.csv.
    scale_lr: str = "none"
    reference_world_size: int = 1
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    max_steps: int = 2000
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    batch_size: int = 8  # windows per rank per micro-batch
    accumulate: int = 1  # micro-batches per optimizer step
    grad_clip: float = 1.0  # max gradient norm (0: off)
    amp: bool = True  # bfloat16 autocast on GPU (ignored on CPU)


@dataclass
class TrainConfig:
    model: str = "avdetect-small"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # see avdetect.models.model_config
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    forge: ForgeConfig = field(default_factory=ForgeConfig)  # on-the-fly forgeries of real clips
    init_checkpoint: str | None = None  # start from these weights (a checkpoint folder of the same architecture)
    protocol: str = "lavdf"  # AP/AR thresholds reported in validation (lavdf | av1m)
    best_metric: str = "ap@0.5"  # validation metric that selects best/ (higher is better)
    seed: int = 0
    out_dir: str = "runs/run"
    log_every: int = 10
    val_every: int = 200
    ckpt_every: int = 200
    keep_last: int = 2  # step checkpoints kept (best/ is kept apart)
    threads: int | None = None  # torch CPU threads per rank (None: torch default)
    device: str = "auto"  # auto | cpu | cuda
    find_unused_parameters: bool = True  # DDP: a batch without audio or faces leaves branches unused


_NESTED = {"data": DataConfig, "optim": OptimConfig, "augment": AugmentConfig, "forge": ForgeConfig}


def _build(cls, values: dict, where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}'; known: {', '.join(sorted(names))}")
        if cls is TrainConfig and key in _NESTED:
            if not isinstance(value, dict):
                raise ConfigError(f"config section {key!r} must be a mapping")
            value = _build(_NESTED[key], value, f"{key}.")
        elif isinstance(getattr(cls(), key), tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, smoke: bool = False) -> TrainConfig:
    """Dataclass defaults, then the YAML file (with its ``smoke:`` section merged over it when
    ``smoke``), then ``key.sub=value`` overrides (YAML values)."""
    import yaml

    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the config must be a YAML mapping")
        data = loaded
    smoke_section = data.pop("smoke", None)
    if smoke_section is not None:
        if not isinstance(smoke_section, dict):
            raise ConfigError(f"{path}: 'smoke' must be a mapping of config keys")
        _build(TrainConfig, _merge(data, smoke_section), "")  # its keys are checked even when not used
    if smoke:
        if smoke_section is None:
            raise ConfigError(f"{path}: --smoke given but the config has no 'smoke' section")
        data = _merge(data, smoke_section)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        node: dict = {}
        cur = node
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = yaml.safe_load(raw)
        data = _merge(data, node)
    return _build(TrainConfig, data, "")


def config_to_dict(cfg: TrainConfig) -> dict:
    d = dataclasses.asdict(cfg)

    def fix(x):
        if isinstance(x, tuple):
            return [fix(v) for v in x]
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        return x

    return fix(d)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")


# ---------------------------------------------------------------------------------------
# training state without pickle: tensors -> safetensors, the rest -> JSON
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


def save_training_state(folder: str | Path, optimizer: torch.optim.Optimizer, info: dict) -> None:
    """Optimizer state (tensors), torch RNG states and ``info`` (step, epoch, best, ...)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(folder / STATE_TENSORS))
    meta = {"param_groups": sd["param_groups"], "optim_scalars": scalars, **info}
    (folder / STATE_JSON).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def load_training_state(folder: str | Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_training_state` wrote; return its ``info``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / STATE_TENSORS).is_file() or not (folder / STATE_JSON).is_file():
        raise CheckpointError(f"no {STATE_TENSORS} / {STATE_JSON}: not a training checkpoint", folder)
    tensors = load_file(str(folder / STATE_TENSORS))
    meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, st in meta.pop("optim_scalars").items():
        state.setdefault(int(pid), {}).update(st)
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    return meta
