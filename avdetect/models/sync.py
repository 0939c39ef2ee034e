"""LipSyncCrossAttention: audio<->visual cross-attention and a self-supervised sync head.

* **Cross-attention** (``depth`` blocks): each block updates both streams at once: visual
  frames attend to audio frames and audio frames attend to visual frames, with invalid
  frames of the other modality masked out as keys and, by default, only within ``window``
  frames of the query (lip-sync evidence is local). Both streams carry sinusoidal frame
  positions, so attention can tell a lag from a match. The updated streams are concatenated
  and projected to one per-frame *sync feature*.
* **Sync head** (offset classification, SyncNet-like but dense): unimodal embeddings are
  taken *before* cross-attention (otherwise the audio would already be mixed into the visual
  stream), L2-normalised, and compared by a scaled cosine at every offset
  ``k in [-K, K]``: ``sync_logits[b, t, K + k] = s * <e_v[b, t], e_a[b, t + k]>``. Entries
  whose audio frame is out of range or invalid, or whose visual frame is invalid, hold
  ``INVALID_LOGIT``. On real clips the target is offset 0 (or the shift the data loader
  applied to the audio), a self-supervised loss that needs no labels; at inference the
  softmax over offsets says how well lips and voice agree at every frame, and it is fed to
  the fusion transformer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from avdetect.models.config import SyncConfig
from avdetect.models.layers import MLP, Attention, key_mask_to_attn_mask, sinusoidal_positions

INVALID_LOGIT: float = -1.0e4


@dataclass
class SyncOutput:
    features: torch.Tensor  # (B, T, dim) per-frame fused cross-modal features
    logits: torch.Tensor  # (B, T, 2K+1) offset logits; index K is "in sync"


class CrossBlock(nn.Module):
    """One bidirectional cross-attention block (pre-norm, both streams updated together)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm_v, self.norm_a = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.v_from_a = Attention(dim, heads, dropout=dropout)
        self.a_from_v = Attention(dim, heads, dropout=dropout)
        self.norm_mv, self.norm_ma = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp_v, self.mlp_a = MLP(dim, mlp_ratio, dropout), MLP(dim, mlp_ratio, dropout)

    def forward(self, v, a, mask_v_from_a, mask_a_from_v):
        nv, na = self.norm_v(v), self.norm_a(a)
        v = v + self.v_from_a(nv, na, mask_v_from_a)  # (B, T, D) video queries, audio keys
        a = a + self.a_from_v(na, nv, mask_a_from_v)  # (B, T, D) audio queries, video keys
        v = v + self.mlp_v(self.norm_mv(v))
        a = a + self.mlp_a(self.norm_ma(a))
        return v, a


class LipSyncCrossAttention(nn.Module):
    """Per-frame sync features ``(B, T, dim)`` and offset logits ``(B, T, 2K+1)``."""

    def __init__(self, cfg: SyncConfig, visual_dim: int, audio_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.in_v = nn.Linear(visual_dim, d)
        self.in_a = nn.Linear(audio_dim, d)
        self.blocks = nn.ModuleList(CrossBlock(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.out = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, d))
        self.norm = nn.LayerNorm(d)
        self.embed_v = nn.Linear(visual_dim, cfg.embed_dim)
        self.embed_a = nn.Linear(audio_dim, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.3))  # exp(2.3) ~ 10

    @property
    def n_offsets(self) -> int:
        return 2 * self.cfg.max_offset + 1

    def forward(self, v: torch.Tensor, a: torch.Tensor, v_mask: torch.Tensor, a_mask: torch.Tensor) -> SyncOutput:
        """``v`` (B, T, Dv), ``a`` (B, T, Da), masks (B, T) bool."""
        t = v.shape[1]
        logits = self.sync_logits(v, a, v_mask, a_mask)  # (B, T, 2K+1)
        pos = sinusoidal_positions(t, self.cfg.dim, v.device, v.dtype)[None]  # (1, T, D)
        xv = self.in_v(v) + pos  # (B, T, D)
        xa = self.in_a(a) + pos  # (B, T, D)
        mask_v_from_a = key_mask_to_attn_mask(a_mask, t, self.cfg.window)  # (B, 1, T, T)
        mask_a_from_v = key_mask_to_attn_mask(v_mask, t, self.cfg.window)  # (B, 1, T, T)
        for block in self.blocks:
            xv, xa = block(xv, xa, mask_v_from_a, mask_a_from_v)  # (B, T, D) each
        feats = self.norm(self.out(torch.cat([xv, xa], dim=-1)))  # (B, T, D)
        return SyncOutput(features=feats, logits=logits)

    def sync_logits(self, v: torch.Tensor, a: torch.Tensor, v_mask: torch.Tensor, a_mask: torch.Tensor) -> torch.Tensor:
        k = self.cfg.max_offset
        ev = F.normalize(self.embed_v(v), dim=-1)  # (B, T, E)
        ea = F.normalize(self.embed_a(a), dim=-1)  # (B, T, E)
        ea = F.pad(ea, (0, 0, k, k))  # (B, T+2K, E)
        ea = ea.unfold(1, 2 * k + 1, 1)  # (B, T, E, 2K+1): window t .. t+2K = audio frames t-K .. t+K
        scale = self.logit_scale.clamp(max=4.6).exp()  # at most 100
        logits = torch.einsum("bte,btek->btk", ev, ea) * scale  # (B, T, 2K+1)
        am = F.pad(a_mask, (k, k), value=False).unfold(1, 2 * k + 1, 1)  # (B, T, 2K+1)
        valid = am & v_mask[..., None]
        return logits.masked_fill(~valid, INVALID_LOGIT)
