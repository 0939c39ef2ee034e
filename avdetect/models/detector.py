"""AVDetector: the joint audio-visual model (encoders, lip-sync, fusion, heads, checkpoints).

Input contract (``forward``), on the 25 Hz grid, ``T`` frames per window:

* ``mouth``: ``(B, T, 3, 96, 96)`` uint8 (0..255) or float (0..1) RGB mouth crops, or ``None``
  for clips without video; ``face``: ``(B, T, 3, 128, 128)`` when the config uses faces;
* ``audio``: ``(B, T * 640)`` float32 mono 16 kHz aligned with the frames, or ``None``;
* ``visual_mask`` / ``audio_mask``: ``(B, T)`` bool, ``True`` where the frame has a face /
  has audio. Batch padding is "neither". Defaults: all ``True`` for a given modality, all
  ``False`` for a missing one. The content of masked frames never changes any output.

Output: :class:`DetectorOutput` (tensors only; losses live in :mod:`avdetect.models.losses`).

Localisation design: **anchor-free, ActionFormer-style**, on the frame grid. Every frame
gets (a) a fused fake logit (plus visual and audio ones), (b) start/end boundary logits
(trained against Gaussian bumps around true segment edges), and (c) non-negative distances
in frames from the frame's centre to the start and to the end of the fake segment it belongs
to. A proposal from frame ``t`` is ``[t + 0.5 - d_start, t + 0.5 + d_end]`` (frames) scored by its fake probability (optionally
refined with the boundary scores), followed by soft-NMS in :mod:`avdetect.localization`.
This needs no anchors or proposal lengths, handles segments from one frame to the whole
window, and every output is a dense per-frame track that merges cleanly across windows.

Clip outputs come from attention pooling over valid frames: one real/fake logit and four
category logits (:data:`avdetect.vocab.CATEGORIES` order).

Stages: :meth:`AVDetector.forward_features` (visual and audio encoders, lip-sync
cross-attention, fusion transformer -> :class:`DetectorFeatures`, per-frame fused features
and masks) and :meth:`AVDetector.forward_heads` (frame, boundary, offset and clip heads ->
:class:`DetectorOutput`); ``forward`` is the two in turn.
"""
from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from avdetect._version import __version__
from avdetect.errors import CheckpointError, ConfigError, ModelInputError
from avdetect.models.audio import AudioEncoder
from avdetect.models.config import ARCHITECTURE, CONFIG_NAME, WEIGHTS_NAME, DetectorConfig, read_checkpoint_config
from avdetect.models.layers import MaskedTemporalConv, TransformerBlock, key_mask_to_attn_mask, sinusoidal_positions
from avdetect.models.sync import INVALID_LOGIT, LipSyncCrossAttention
from avdetect.models.visual import build_visual_encoder
from avdetect.timegrid import SAMPLES_PER_FRAME, frame_to_sample, samples_to_frames
from avdetect.vocab import CATEGORIES  # also importable from here (avdetect.models.detector.CATEGORIES)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass
class DetectorFeatures:
    """What :meth:`AVDetector.forward_features` returns and :meth:`AVDetector.forward_heads` reads."""

    features: torch.Tensor  # (B, T, D) normed per-frame output of the fusion transformer
    sync_logits: torch.Tensor  # (B, T, 2K+1) audio offset -K..K relative to the video
    visual_mask: torch.Tensor  # (B, T) bool, frames with a usable face
    audio_mask: torch.Tensor  # (B, T) bool, frames with audio
    frame_mask: torch.Tensor  # (B, T) bool, visual_mask | audio_mask


@dataclass
class DetectorOutput:
    """What :meth:`AVDetector.forward` returns. Logits are raw (apply sigmoid / softmax).

    Per-frame values are defined everywhere but only meaningful where the matching mask is
    ``True``: visual logits on ``visual_mask``, audio logits on ``audio_mask``, the rest on
    ``frame_mask``. Distances are in frames (40 ms); convert with :mod:`avdetect.timegrid`.
    """

    clip_logits: torch.Tensor  # (B,) real (<0) vs fake (>0)
    category_logits: torch.Tensor  # (B, 4) in avdetect.vocab.CATEGORIES order
    frame_visual_logits: torch.Tensor  # (B, T) visual stream manipulated
    frame_audio_logits: torch.Tensor  # (B, T) audio stream manipulated
    frame_fused_logits: torch.Tensor  # (B, T) either manipulated
    boundary_logits: torch.Tensor  # (B, T, 2) a fake segment starts / ends at this frame
    boundary_offsets: torch.Tensor  # (B, T, 2) frames from this frame's centre to segment start / end (>= 0)
    sync_logits: torch.Tensor  # (B, T, 2K+1) audio offset -K..K relative to the video
    visual_mask: torch.Tensor  # (B, T) bool, frames with a usable face
    audio_mask: torch.Tensor  # (B, T) bool, frames with audio
    frame_mask: torch.Tensor  # (B, T) bool, visual_mask | audio_mask

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def detach(self) -> "DetectorOutput":
        return DetectorOutput(**{k: v.detach() for k, v in self.to_dict().items()})


class _SkipInit(TorchFunctionMode):
    """``torch.nn.init`` functions leave their tensor as it is: on the meta device there are no
    values to fill, and torch fills meta tensors through its Python reference ops, whose first
    call imports ``torch._dynamo`` (about a second of start-up)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor):
                return tensor
        return func(*args, **kwargs)


class AVDetector(nn.Module):
    """Joint audio-visual deepfake detector and localiser (see the module docstring)."""

    def __init__(self, config: DetectorConfig, inference_only: bool = False):
        super().__init__()
        self.config = copy.deepcopy(config)
        cfg = self.config
        self.visual = build_visual_encoder(cfg.visual)  # cfg.visual.arch
        # records a loaded wav2vec2 config in cfg.audio; inference_only: see from_pretrained
        self.audio = AudioEncoder(cfg.audio, inference_only=inference_only)
        self.sync = LipSyncCrossAttention(cfg.sync, cfg.visual.dim, cfg.audio.dim)
        fc = cfg.fusion
        d = fc.dim
        n_off = self.sync.n_offsets
        self.fuse_in = nn.Sequential(nn.Linear(cfg.visual.dim + cfg.audio.dim + cfg.sync.dim + n_off, d), nn.GELU(),
                                     nn.Linear(d, d))
        self.availability = nn.Embedding(4, d)  # index = has_face + 2 * has_audio
        self.local = MaskedTemporalConv(d, kernel=3)
        self.blocks = nn.ModuleList(TransformerBlock(d, fc.heads, fc.mlp_ratio, fc.dropout) for _ in range(fc.depth))
        self.norm = nn.LayerNorm(d)
        self.frame_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 3))  # visual, audio, fused
        self.boundary_head = MaskedTemporalConv(d, kernel=3, out_dim=2)  # start, end
        self.offset_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 2))
        self.offset_log_scale = nn.Parameter(torch.tensor(math.log(fc.offset_init_scale)))
        self.pool_score = nn.Linear(d, 1)
        self.clip_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1 + len(CATEGORIES)))
        with torch.no_grad():  # sparse boundaries: start with low probability (focal-style prior)
            self.boundary_head.pw.bias.fill_(-math.log(99.0))

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self, mouth, audio, face, visual_mask, audio_mask):
        if mouth is None and audio is None:
            raise ModelInputError("AVDetector needs mouth crops, audio, or both; got neither")
        if mouth is not None:
            if mouth.dim() != 5 or mouth.shape[2] != 3:
                hint = " (channels last? permute to (B, T, 3, H, W))" if mouth.dim() == 5 and mouth.shape[-1] == 3 else ""
                raise ModelInputError(f"mouth crops must be (B, T, 3, H, W), got {tuple(mouth.shape)}{hint}")
            b, t = mouth.shape[:2]
        else:
            if audio.dim() != 2:
                raise ModelInputError(f"audio must be (B, T*{SAMPLES_PER_FRAME}), got {tuple(audio.shape)}")
            b = audio.shape[0]
            t = samples_to_frames(audio.shape[1])
        if t < 1:
            raise ModelInputError("a window must hold at least one frame")
        if audio is not None and (audio.dim() != 2 or tuple(audio.shape) != (b, frame_to_sample(t))):
            raise ModelInputError(f"audio must be (B, T*{SAMPLES_PER_FRAME}) = ({b}, {frame_to_sample(t)}) "
                                  f"for {t} frames, got {tuple(audio.shape)}")
        if self.config.visual.use_face and mouth is not None:
            if face is None or face.dim() != 5 or tuple(face.shape[:3]) != (b, t, 3):
                got = None if face is None else tuple(face.shape)
                raise ModelInputError(f"this model uses face crops: face must be (B, T, 3, H, W) = ({b}, {t}, 3, ...), got {got}")
        for name, m in (("visual_mask", visual_mask), ("audio_mask", audio_mask)):
            if m is not None and tuple(m.shape) != (b, t):
                raise ModelInputError(f"{name} must be (B, T) = ({b}, {t}), got {tuple(m.shape)}")
        return b, t

    # ------------------------------------------------------------------ forward
    def forward(self, mouth: torch.Tensor | None = None, audio: torch.Tensor | None = None, *,
                face: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None,
                audio_mask: torch.Tensor | None = None) -> DetectorOutput:
        """Heads over the fused features: ``forward_heads(forward_features(...))``."""
        return self.forward_heads(self.forward_features(mouth, audio, face=face, visual_mask=visual_mask,
                                                        audio_mask=audio_mask))

    def forward_features(self, mouth: torch.Tensor | None = None, audio: torch.Tensor | None = None, *,
                         face: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None,
                         audio_mask: torch.Tensor | None = None) -> DetectorFeatures:
        """Encoders, lip-sync cross-attention and the fusion transformer (inputs: module docstring)."""
        b, t = self._check_inputs(mouth, audio, face, visual_mask, audio_mask)
        device = (mouth if mouth is not None else audio).device
        if mouth is None:
            vm = torch.zeros(b, t, dtype=torch.bool, device=device)  # (B, T)
        else:
            vm = torch.ones(b, t, dtype=torch.bool, device=device) if visual_mask is None else visual_mask.bool()
        if audio is None:
            am = torch.zeros(b, t, dtype=torch.bool, device=device)  # (B, T)
        else:
            am = torch.ones(b, t, dtype=torch.bool, device=device) if audio_mask is None else audio_mask.bool()
        fm = vm | am  # (B, T)

        if mouth is not None and bool(vm.any()):
            v = self.visual(mouth, vm, face)  # (B, T, Dv)
        else:
            v = self.visual.missing.expand(b, t, -1)  # (B, T, Dv) visual branch skipped
        if audio is not None and bool(am.any()):
            a = self.audio(audio, am)  # (B, T, Da)
        else:
            a = self.audio.missing_features(b, t)  # (B, T, Da) audio branch skipped
        v = v.to(a.dtype) if v.dtype != a.dtype else v

        sync = self.sync(v, a, vm, am)  # features (B, T, Ds), logits (B, T, 2K+1)
        sync_probs = torch.softmax(sync.logits.float(), dim=-1).to(sync.features.dtype)  # (B, T, 2K+1)
        x = self.fuse_in(torch.cat([v, a, sync.features, sync_probs], dim=-1))  # (B, T, D)
        x = x + self.availability(vm.long() + 2 * am.long())  # (B, T, D)
        x = x + sinusoidal_positions(t, x.shape[-1], x.device, x.dtype)[None]  # (B, T, D)
        x = x + self.local(x, fm)  # (B, T, D)
        attn_mask = key_mask_to_attn_mask(fm, t, self.config.fusion.window)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, attn_mask)  # (B, T, D)
        h = self.norm(x)  # (B, T, D)
        return DetectorFeatures(features=h, sync_logits=sync.logits, visual_mask=vm, audio_mask=am, frame_mask=fm)

    def forward_heads(self, feats: DetectorFeatures) -> DetectorOutput:
        """Frame, boundary, offset and clip heads over :meth:`forward_features`' output."""
        h, fm = feats.features, feats.frame_mask  # (B, T, D), (B, T)
        frame = self.frame_head(h)  # (B, T, 3) visual, audio, fused
        boundary = self.boundary_head(h, fm)  # (B, T, 2) start, end
        offsets = F.softplus(self.offset_head(h)) * self.offset_log_scale.exp()  # (B, T, 2) frames
        score = self.pool_score(h).squeeze(-1).masked_fill(~fm, INVALID_LOGIT)  # (B, T)
        weights = torch.softmax(score.float(), dim=-1).to(h.dtype)  # (B, T)
        pooled = torch.einsum("bt,btd->bd", weights, h)  # (B, D)
        clip = self.clip_head(pooled)  # (B, 1 + 4)
        return DetectorOutput(
            clip_logits=clip[:, 0],  # (B,)
            category_logits=clip[:, 1:],  # (B, 4)
            frame_visual_logits=frame[..., 0],  # (B, T)
            frame_audio_logits=frame[..., 1],  # (B, T)
            frame_fused_logits=frame[..., 2],  # (B, T)
            boundary_logits=boundary,
            boundary_offsets=offsets,
            sync_logits=feats.sync_logits,  # (B, T, 2K+1)
            visual_mask=feats.visual_mask,
            audio_mask=feats.audio_mask,
            frame_mask=fm,
        )

    # ------------------------------------------------------------------ info
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``; return it."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt", "architecture": ARCHITECTURE})
        meta = {"architecture": ARCHITECTURE, "format_version": CHECKPOINT_FORMAT, "avdetect_version": __version__,
                "config": self.config.to_dict()}
        (out / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        logger.info("saved %s (%s, %d parameters) to %s", ARCHITECTURE, self.config.name, self.num_parameters(), out)
        return out

    @classmethod
    def _check_size(cls, config: DetectorConfig, config_file: Path, weights: Path, inference_only: bool) -> None:
        """Refuse a config that does not build, or that describes far more weights than the
        weights file holds (a tampered config: allocating it would exhaust memory), before any
        memory is allocated: the network is built on the meta device (shapes only)."""
        import copy

        try:
            with torch.device("meta"), _SkipInit():
                probe = cls(copy.deepcopy(config), inference_only=inference_only)
        except (ConfigError, TypeError, ValueError, ZeroDivisionError, AttributeError, RuntimeError) as err:
            raise CheckpointError(f"invalid model config: {type(err).__name__}: {str(err).splitlines()[0]}",
                                  config_file) from err
        n = sum(p.numel() for p in probe.parameters())
        held = weights.stat().st_size
        if 2 * n > held + (1 << 20):  # fewer than 2 bytes a parameter: not this config's weights (fp16 needs 2)
            raise CheckpointError(f"config.json describes {n:,} parameters ({2 * n / 1e6:,.0f} MB even in 16-bit), "
                                  f"but {WEIGHTS_NAME} holds {held / 1e6:,.1f} MB: a tampered or mismatched config",
                                  config_file)

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu",
                        inference_only: bool = False) -> "AVDetector":
        """Rebuild the model from ``config.json`` and load ``model.safetensors`` exactly.

        ``path`` is the checkpoint folder or its ``model.safetensors``. ``inference_only``: a
        model that only predicts (the detection API's): its wav2vec2 is
        :class:`~avdetect.models.wav2vec2.Wav2Vec2Inference`, the same network and weights
        without importing ``transformers`` (about 5 s of CPU at start-up), and ``train()`` is
        refused. Raises
        :class:`CheckpointError` for missing files, another architecture, or weights whose
        keys or shapes do not match the configured model.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        folder = path.parent if path.is_file() else path
        weights, config_file = folder / WEIGHTS_NAME, folder / CONFIG_NAME
        config = read_checkpoint_config(folder)
        if not config.audio.pretrained_dir:  # (a pretrained folder is loaded, and checked, by the encoder)
            cls._check_size(config, config_file, weights, inference_only)
        try:
            model = cls(config, inference_only=inference_only)
        except (ConfigError, TypeError, ValueError, ZeroDivisionError, AttributeError) as err:
            raise CheckpointError(f"invalid model config: {type(err).__name__}: {err}", config_file) from err
        try:
            state = load_file(str(weights), device=str(map_location))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"unreadable safetensors file: {err}", weights) from err
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing key(s) e.g. {missing[:3]}")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[:3]}")
            raise CheckpointError("weights do not match the config: " + "; ".join(parts), weights)
        bad = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
        if bad:
            k = bad[0]
            raise CheckpointError(f"{len(bad)} tensor(s) with wrong shape, e.g. {k}: "
                                  f"{tuple(state[k].shape)} vs {tuple(expected[k].shape)}", weights)
        model.load_state_dict(state, strict=True)
        model.to(map_location)
        model.eval()
        logger.info("loaded %s (%s) from %s", ARCHITECTURE, config.name, folder)
        return model
