"""Building blocks shared by the encoders, the lip-sync module and the fusion transformer.

All attention goes through :func:`masked_attention` (``F.scaled_dot_product_attention``) with
boolean masks where ``True`` means "may attend". Query rows that would have no key to attend
to (a clip without audio, a window without faces) are given a dummy full row for numerical
safety and their output is zeroed, so no NaN ever appears.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def key_mask_to_attn_mask(key_mask: torch.Tensor | None, n_queries: int, window: int | None,
                          device: torch.device | None = None) -> torch.Tensor | None:
    """Boolean attention mask ``(B, 1, Tq, Tk)`` from a key padding mask and a local window.

    Args:
        key_mask: ``(B, Tk)`` bool, ``True`` for valid keys; ``None`` = all valid.
        n_queries: ``Tq``; queries and keys share the time axis (query ``i`` is frame ``i``).
        window: if given, query ``i`` only sees keys ``j`` with ``|i - j| <= window``.
    """
    if window is None and (key_mask is None or bool(key_mask.all())):
        return None  # nothing to mask: lets SDPA take its fastest path
    mask = None
    if key_mask is not None:
        mask = key_mask[:, None, None, :].expand(-1, 1, n_queries, -1)  # (B, 1, Tq, Tk)
    if window is not None:
        device = key_mask.device if key_mask is not None else device
        n_keys = key_mask.shape[1] if key_mask is not None else n_queries
        qi = torch.arange(n_queries, device=device)[:, None]
        kj = torch.arange(n_keys, device=device)[None, :]
        band = (qi - kj).abs() <= window  # (Tq, Tk)
        mask = band[None, None] if mask is None else mask & band
    return mask


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     dropout: float = 0.0) -> torch.Tensor:
    """SDPA with a boolean mask; rows without any allowed key return zeros instead of NaN.

    ``q``: ``(B, G, Tq, E)``, ``k``/``v``: ``(B, G, Tk, E)``, ``mask``: broadcastable to
    ``(B, G, Tq, Tk)`` (``True`` = attend).
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    has_key = mask.any(dim=-1, keepdim=True)  # (B, 1|G, Tq, 1)
    safe = mask | ~has_key
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, dropout_p=dropout)
    return out * has_key.to(out.dtype)


class Attention(nn.Module):
    """Multi-head attention over the last-but-one axis; self- or cross-attention."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q = rearrange(self.q(x), "b t (h e) -> b h t e", h=self.heads)  # (B, H, Tq, E)
        k, v = rearrange(self.kv(context), "b t (two h e) -> two b h t e", two=2, h=self.heads)
        y = masked_attention(q, k, v, mask, self.dropout if self.training else 0.0)  # (B, H, Tq, E)
        return self.out(rearrange(y, "b h t e -> b t (h e)"))  # (B, Tq, D)


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 2.0, dropout: float = 0.0, out_dim: int | None = None):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim or dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention block over ``(B, T, D)`` with a key mask and optional window."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask=mask)  # (B, T, D)
        return x + self.mlp(self.norm2(x))  # (B, T, D)


def sinusoidal_positions(n: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed sinusoidal embedding ``(n, dim)`` of positions ``0..n-1`` (frames)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    ang = pos * freq[None, :]
    emb = torch.cat([ang.sin(), ang.cos()], dim=-1)
    if emb.shape[1] < dim:
        emb = F.pad(emb, (0, dim - emb.shape[1]))
    return emb.to(dtype)


class MaskedTemporalConv(nn.Module):
    """Depthwise-separable 1-D conv over time that treats invalid frames as zeros.

    Used as a cheap relative-position / local-context mixer before transformers; zeroing
    invalid frames first makes the output independent of their content.
    """

    def __init__(self, dim: int, kernel: int = 3, out_dim: int | None = None):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.pw = nn.Conv1d(dim, out_dim or dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)  # (B, T, D)
        y = self.pw(F.gelu(self.dw(rearrange(x, "b t d -> b d t"))))  # (B, D', T)
        return rearrange(y, "b d t -> b t d")
