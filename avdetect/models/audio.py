"""AudioEncoder: wav2vec2 + log-mel branches fused to one vector per 25 Hz frame.

* **wav2vec2** (``transformers.Wav2Vec2Model``): built from a ``Wav2Vec2Config`` (random
  init) or loaded from a local folder with ``from_pretrained(local_dir, local_files_only=True)``
  (never a hub id). Options: freeze it entirely, freeze only its convolutional feature
  encoder, and take a learned softmax-weighted sum of all hidden layers instead of the last.
  A model loaded only to predict (``AVDetector.from_pretrained(..., inference_only=True)``)
  runs the same network and weights as :class:`~avdetect.models.wav2vec2.Wav2Vec2Inference`,
  which does not import ``transformers`` (about 5 s of CPU at every cold start).
  Its 50 Hz output (frame ``j`` centred near sample ``320 j + 200``) is put on the 25 Hz grid
  by pairing frames ``2 i`` and ``2 i + 1`` (the last missing one repeats its neighbour) and
  projecting the concatenated pair, which keeps the 20 ms detail instead of averaging it away.
* **log-mel** (:func:`avdetect.features.log_mel`, 4 hops per frame): the four 10 ms mel
  vectors of a frame are concatenated and passed through an MLP.
* the two are concatenated, projected and layer-normed to ``dim``.

Masking: samples of invalid frames (no audio) are zeroed before both branches, so their
content never influences the output; invalid frames then get a learned "missing" vector.
wav2vec2 sees the whole window (its attention is global), so a clip's output does depend on
how long the zero padding after it is; only the content of masked frames is ignored.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from avdetect.errors import CheckpointError
from avdetect.features import HOPS_PER_FRAME, log_mel, mel_filterbank
from avdetect.models.config import AudioConfig
from avdetect.timegrid import SAMPLES_PER_FRAME

logger = logging.getLogger(__name__)


def _build_wav2vec2(cfg: AudioConfig, inference_only: bool = False):
    """Return a ``Wav2Vec2Model`` from ``cfg.pretrained_dir`` (local) or ``cfg.wav2vec2``.

    LayerDrop is switched off when the layer-weighted sum is used: a dropped layer would
    change the number of hidden states from step to step. ``inference_only``: the same network
    as :class:`~avdetect.models.wav2vec2.Wav2Vec2Inference` (no ``transformers`` import) when it
    covers ``cfg.wav2vec2`` and no pretrained folder is to be read.
    """
    if inference_only and not cfg.pretrained_dir:
        from avdetect.models.wav2vec2 import Wav2Vec2Inference, unsupported

        reason = unsupported(cfg.wav2vec2)
        if reason is None:
            return Wav2Vec2Inference(cfg.wav2vec2)
        logger.info("wav2vec2 built with transformers: the inference copy does not cover %s", reason)
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    extra = {"layerdrop": 0.0} if cfg.layer_weighted_sum else {}
    if cfg.pretrained_dir:
        folder = Path(cfg.pretrained_dir).expanduser()
        if not (folder / "config.json").is_file():
            raise CheckpointError("not a local wav2vec2 folder (no config.json); nothing is downloaded", folder)
        if not (folder / "model.safetensors").is_file():
            pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
            raise CheckpointError("no model.safetensors in the wav2vec2 folder" + (
                f" ({', '.join(sorted(pickled))} is a pickle, which avdetect never loads: convert it to safetensors)"
                if pickled else ""), folder)
        from safetensors import SafetensorError

        try:
            model = Wav2Vec2Model.from_pretrained(str(folder), local_files_only=True, use_safetensors=True, **extra)
        except (OSError, ValueError, SafetensorError) as err:
            raise CheckpointError(f"cannot load wav2vec2 weights: {str(err).splitlines()[0]}", folder) from err
        logger.info("loaded wav2vec2 from %s (%d layers, hidden %d)", folder,
                    model.config.num_hidden_layers, model.config.hidden_size)
        return model
    return Wav2Vec2Model(Wav2Vec2Config(**{**cfg.wav2vec2, **extra}))


def wav2vec2_config_dict(model) -> dict:
    """The loaded model's config as plain kwargs that rebuild the same architecture."""
    data = model.config.to_dict()
    for key in ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype"):
        data.pop(key, None)
    return data


class AudioEncoder(nn.Module):
    """Per-frame audio features ``(B, T, dim)`` from a 16 kHz waveform ``(B, T * 640)``."""

    def __init__(self, cfg: AudioConfig, inference_only: bool = False):
        super().__init__()
        self.cfg = cfg
        self.wav2vec2 = _build_wav2vec2(cfg, inference_only)
        w2v_cfg = self.wav2vec2.config
        if cfg.pretrained_dir:
            # record the loaded architecture so that a checkpoint rebuilds it without the folder
            cfg.wav2vec2 = wav2vec2_config_dict(self.wav2vec2)
            cfg.pretrained_dir = None
        hidden = w2v_cfg.hidden_size
        n_layers = w2v_cfg.num_hidden_layers + 1
        self.layer_weights = nn.Parameter(torch.zeros(n_layers)) if cfg.layer_weighted_sum else None
        self.w2v_proj = nn.Linear(2 * hidden, cfg.dim)
        if cfg.use_mel:
            self.register_buffer("mel_fb", mel_filterbank(cfg.n_mels), persistent=False)
            self.mel_mlp = nn.Sequential(nn.Linear(HOPS_PER_FRAME * cfg.n_mels, cfg.mel_dim), nn.GELU(),
                                         nn.Linear(cfg.mel_dim, cfg.mel_dim))
        fused_in = cfg.dim + (cfg.mel_dim if cfg.use_mel else 0)
        self.fuse = nn.Sequential(nn.Linear(fused_in, cfg.dim), nn.Dropout(cfg.dropout))
        self.norm = nn.LayerNorm(cfg.dim)
        self.missing = nn.Parameter(torch.zeros(cfg.dim))
        nn.init.normal_(self.missing, std=0.02)
        if cfg.freeze:
            self.wav2vec2.requires_grad_(False)
        elif cfg.freeze_feature_encoder:
            self.wav2vec2.freeze_feature_encoder()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.freeze:
            self.wav2vec2.eval()  # a frozen encoder keeps its dropout off
        return self

    def missing_features(self, batch: int, n_frames: int, dtype=None) -> torch.Tensor:
        """The "no audio" vectors ``(B, T, dim)`` used when a clip has no audio stream."""
        return self.missing.to(dtype or self.missing.dtype).expand(batch, n_frames, -1)

    def forward(self, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``audio`` (B, T*640) float 16 kHz, ``mask`` (B, T) bool valid frames -> (B, T, dim)."""
        b, t = mask.shape
        wave = rearrange(audio.float(), "b (t s) -> b t s", s=SAMPLES_PER_FRAME)
        frame_valid = mask[..., None].to(wave.dtype)  # (B, T, 1)
        wave = wave * frame_valid  # (B, T, 640) invalid frames -> silence
        if self.cfg.normalize_waveform:
            n = (frame_valid.sum(dim=(1, 2)) * SAMPLES_PER_FRAME).clamp_min(1.0)  # (B,)
            mean = wave.sum(dim=(1, 2)) / n
            var = ((wave - mean[:, None, None]).square() * frame_valid).sum(dim=(1, 2)) / n
            wave = (wave - mean[:, None, None]) / torch.sqrt(var + 1e-7)[:, None, None] * frame_valid
        wave = rearrange(wave, "b t s -> b (t s)")  # (B, S)

        grad = torch.is_grad_enabled() and not self.cfg.freeze
        with torch.set_grad_enabled(grad):
            out = self.wav2vec2(wave, output_hidden_states=self.layer_weights is not None)
        if self.layer_weights is not None:
            # the last entry is taken from last_hidden_state: with do_stable_layer_norm the
            # recorded one is before the encoder's final LayerNorm (same tensor otherwise)
            hs = torch.stack([*out.hidden_states[:-1], out.last_hidden_state], dim=0)  # (L+1, B, Ta, H)
            if hs.shape[0] != self.layer_weights.shape[0]:
                raise RuntimeError(f"wav2vec2 returned {hs.shape[0]} hidden states, expected {self.layer_weights.shape[0]}")
            w = torch.softmax(self.layer_weights, dim=0).to(hs.dtype)
            h = torch.einsum("l,lbth->bth", w, hs)  # (B, Ta, H)
        else:
            h = out.last_hidden_state  # (B, Ta, H)
        h = _to_frame_pairs(h, t)  # (B, T, 2H)
        feats = self.w2v_proj(h)  # (B, T, dim)
        if self.cfg.use_mel:
            mel = log_mel(wave, self.cfg.n_mels, filterbank=self.mel_fb)  # (B, 4T, n_mels)
            mel = rearrange(mel, "b (t k) m -> b t (k m)", k=HOPS_PER_FRAME)  # (B, T, 4*n_mels)
            feats = torch.cat([feats, self.mel_mlp(mel.to(feats.dtype))], dim=-1)  # (B, T, dim+mel_dim)
        feats = self.norm(self.fuse(feats))  # (B, T, dim)
        return torch.where(mask[..., None], feats, self.missing.to(feats.dtype))  # (B, T, dim)


def _to_frame_pairs(h: torch.Tensor, n_frames: int) -> torch.Tensor:
    """50 Hz features ``(B, Ta, H)`` -> ``(B, T, 2H)``: frames ``2i, 2i+1`` side by side."""
    need = 2 * n_frames
    if h.shape[1] < need:
        h = F.pad(h.transpose(1, 2), (0, need - h.shape[1]), mode="replicate").transpose(1, 2)
    return rearrange(h[:, :need], "b (t two) h -> b t (two h)", two=2)
