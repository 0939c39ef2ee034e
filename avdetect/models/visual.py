"""Visual encoders: mouth (and optional face) crops -> one vector per 25 Hz frame.

The encoder class is chosen by ``VisualConfig.arch`` from :data:`VISUAL_ENCODERS` (register a
new one with :func:`register_visual_encoder`; :func:`build_visual_encoder` builds it). The
contract every registered class follows:

* ``__init__(cfg: VisualConfig)``;
* ``forward(mouth (B, T, 3, H, W), mask (B, T) bool, face (B, T, 3, H', W') | None) -> (B, T, cfg.dim)``,
  where the content of frames with ``mask`` False never changes any output;
* a ``missing`` parameter ``(cfg.dim,)``: the feature of a frame without a face, which the
  detector also uses when the whole visual branch is skipped.

``spacetime`` (:class:`VisualEncoder`, the default), TimeSformer-style divided attention,
sized by :class:`VisualConfig`:

* crops ``(B, T, 3, H, W)`` (uint8 0..255 or float 0..1) are resized inside the model to
  the configured internal resolution and normalised with ImageNet mean/std;
* a tubelet embedding (``Conv3d`` with kernel ``(tubelet, p, p)``, stride ``(1, p, p)``)
  turns each frame into ``N`` patch tokens that already see ``tubelet`` neighbouring frames
  (lip motion), so the output stays on the 25 Hz grid;
* every frame gets a CLS token; mouth and face tokens of a frame share the spatial attention;
* each block adds a depthwise temporal convolution (a relative, "conditional" position cue),
  then does temporal attention (every token position attends along time, invalid frames
  masked out as keys, optional local window), spatial attention within the frame, and an MLP;
* there is deliberately no absolute time embedding: the encoder is translation-equivariant
  in time (up to window edges), so the lip-sync head cannot match audio and video by
  position and has to match them by content;
* the per-frame output is the normed CLS token projected to ``dim``; invalid frames (no
  face) are replaced by a learned "missing" vector. Invalid frames' pixels are zeroed before
  the tubelet embedding, so their content never influences any output.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from avdetect.errors import ConfigError
from avdetect.models.config import VisualConfig
from avdetect.models.layers import MLP, Attention, key_mask_to_attn_mask, masked_attention

#: Frames the crop stem resizes and normalises at a time (10 float crops of 96 px: about 1 MB).
_STEM_CHUNK_FRAMES = 10
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class SpaceTimeBlock(nn.Module):
    """Divided space-time attention block over tokens ``(B, T, N, D)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        # depthwise conv over time, kernel 3 (a relative, "conditional" position cue)
        self.pos_t_weight = nn.Parameter(torch.zeros(3, dim))
        self.pos_t_bias = nn.Parameter(torch.zeros(dim))
        nn.init.normal_(self.pos_t_weight, std=0.2)
        self.norm_t = nn.LayerNorm(dim)
        self.qkv_t = nn.Linear(dim, 3 * dim)
        self.out_t = nn.Linear(dim, dim)
        self.norm_s = nn.LayerNorm(dim)
        self.attn_s = Attention(dim, heads, dropout=dropout)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)

    def temporal(self, x: torch.Tensor, time_mask: torch.Tensor | None) -> torch.Tensor:
        """Temporal attention over normed tokens ``(B, T, N, D)``: token position n of every frame
        attends along time. The tokens are put in (B, N, T) order before the projection, so q, k
        and v are strided views of its output: one copy of the tokens instead of one each of q, k
        and v, and the same values bit for bit."""
        b, t, n, d = x.shape
        qkv = self.qkv_t(x.transpose(1, 2).contiguous())  # (B, N, T, 3D)
        qkv = qkv.view(b * n, t, 3, self.heads, d // self.heads)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # each (B*N, H, T, E)
        if time_mask is not None and time_mask.shape[0] > 1:
            time_mask = time_mask.repeat_interleave(n, dim=0)  # (B*N, 1, T, T): each clip's mask per position
        y = masked_attention(q, k, v, time_mask, self.dropout if self.training else 0.0)  # (B*N, H, T, E)
        return self.out_t(rearrange(y, "(b n) h t e -> b t n (h e)", b=b))  # (B, T, N, D)

    def forward(self, x: torch.Tensor, time_mask: torch.Tensor | None, frame_mask: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        # depthwise conv along time (invalid frames as zeros): translation-equivariant position cue
        y = F.pad(x * frame_mask[:, :, None, None].to(x.dtype), (0, 0, 0, 0, 1, 1))  # (B, T+2, N, D)
        w = self.pos_t_weight
        x = x + (y[:, :-2] * w[0] + y[:, 1:-1] * w[1] + y[:, 2:] * w[2] + self.pos_t_bias)  # (B, T, N, D)
        x = x + self.temporal(self.norm_t(x), time_mask)  # (B, T, N, D)
        # spatial attention within each frame
        y = rearrange(self.norm_s(x), "b t n d -> (b t) n d")  # (B*T, N, D)
        x = x + rearrange(self.attn_s(y), "(b t) n d -> b t n d", b=b)  # (B, T, N, D)
        return x + self.mlp(self.norm_m(x))  # (B, T, N, D)


@functools.lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(n_out, n_in)`` matrix ``A`` of ``F.interpolate(mode="bilinear", align_corners=False,
    antialias=n_in > n_out)`` along one axis: resizing an image ``X`` (H, W) is ``A_h @ X @ A_w.T``
    (the filter is separable). Read off F.interpolate itself, applied to the unit basis (in
    float64; a constant, outside autograd)."""
    basis = torch.eye(n_in, dtype=torch.float64)[:, None, :, None].expand(n_in, 1, n_in, 2).contiguous()
    with torch.no_grad():
        out = F.interpolate(basis, size=(n_out, 2), mode="bilinear", align_corners=False, antialias=n_in > n_out)
    return out[:, 0, :, 0].T.contiguous().to(device=device, dtype=dtype)  # row j: the weights of output row j


class _CropStem(nn.Module):
    """Resize + normalise + tubelet patch embedding of one crop stream."""

    def __init__(self, size: int, patch: int, tubelet: int, dim: int):
        super().__init__()
        if size % patch:
            raise ValueError(f"internal crop size {size} is not divisible by patch size {patch}")
        if tubelet < 1 or tubelet % 2 == 0:
            raise ValueError(f"tubelet must be a positive odd number of frames, got {tubelet}")
        self.size = size
        self.proj = nn.Conv3d(3, dim, kernel_size=(tubelet, patch, patch), stride=(1, patch, patch),
                              padding=(tubelet // 2, 0, 0))
        self.n_tokens = (size // patch) ** 2
        self.pos = nn.Parameter(torch.zeros(1, 1, self.n_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, crops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t = crops.shape[:2]
        scale = 1.0 / 255.0 if crops.dtype == torch.uint8 else 1.0
        h, w = crops.shape[-2:]
        resize = (h, w) != (self.size, self.size)
        if resize:  # bilinear (antialiased when shrinking) as two small matrix products: F.interpolate's
            # weights exactly, about 3x faster on CPU than F.interpolate itself
            rows = resize_matrix(h, self.size, torch.float32, crops.device)
            cols = resize_matrix(w, self.size, torch.float32, crops.device).T
        weight = mask.float()
        mul, sub = scale / self.std, self.mean / self.std  # [0, 255] or [0, 1] -> normalised
        parts = []
        # resize, normalise and mask a few frames at a time: every step is per frame, so the result
        # is the same bit for bit as over the whole window, but each chunk's float copy stays in
        # the core's cache instead of streaming 4 bytes a pixel of the window through memory
        # several times (measured: the stem 1.6x faster on one CPU thread)
        for a in range(0, t, _STEM_CHUNK_FRAMES):
            x = rearrange(crops[:, a:a + _STEM_CHUNK_FRAMES].float(), "b t c h w -> (b t) c h w")  # (b*k, 3, H, W)
            if resize:
                x = rows @ x @ cols
            x = x * mul - sub
            x = rearrange(x, "(b t) c h w -> b c t h w", b=b)  # (B, 3, k, S, S)
            parts.append(x * weight[:, None, a:a + _STEM_CHUNK_FRAMES, None, None])  # invalid frames -> zeros
        x = self.proj(torch.cat(parts, dim=2))  # (B, D, T, S/p, S/p)
        return rearrange(x, "b d t h w -> b t (h w) d") + self.pos  # (B, T, N, D)


VISUAL_ENCODERS: dict[str, type[nn.Module]] = {}


def register_visual_encoder(name: str):
    """Class decorator: make an encoder class available as ``VisualConfig(arch=name)``."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in VISUAL_ENCODERS:
            raise ValueError(f"visual encoder {name!r} is already registered")
        VISUAL_ENCODERS[name] = cls
        return cls

    return wrap


def build_visual_encoder(cfg: VisualConfig) -> nn.Module:
    """The encoder ``cfg.arch`` built from ``cfg``; :class:`ConfigError` naming the known ones otherwise."""
    cls = VISUAL_ENCODERS.get(cfg.arch)
    if cls is None:
        raise ConfigError(f"unknown visual encoder arch {cfg.arch!r}; known: {', '.join(sorted(VISUAL_ENCODERS))}")
    return cls(cfg)


@register_visual_encoder("spacetime")
class VisualEncoder(nn.Module):
    """Per-frame visual features ``(B, T, dim)`` from mouth (+ optional face) crops (arch ``spacetime``)."""

    def __init__(self, cfg: VisualConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.mouth_stem = _CropStem(cfg.mouth_size, cfg.patch_size, cfg.tubelet, d)
        self.face_stem = (_CropStem(cfg.face_size, cfg.face_patch_size, cfg.tubelet, d)
                          if cfg.use_face else None)
        self.cls = nn.Parameter(torch.zeros(1, 1, 1, d))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.ModuleList(SpaceTimeBlock(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.missing = nn.Parameter(torch.zeros(d))
        nn.init.normal_(self.missing, std=0.02)

    def forward(self, mouth: torch.Tensor, mask: torch.Tensor, face: torch.Tensor | None = None) -> torch.Tensor:
        """``mouth`` (B, T, 3, H, W), ``mask`` (B, T) bool valid frames, ``face`` optional."""
        b, t = mouth.shape[:2]
        tokens = self.mouth_stem(mouth, mask)  # (B, T, Nm, D)
        if self.face_stem is not None:
            if face is None:
                raise ValueError("this visual encoder was configured with use_face=True but got no face crops")
            tokens = torch.cat([tokens, self.face_stem(face, mask)], dim=2)  # (B, T, Nm+Nf, D)
        cls = self.cls.expand(b, t, 1, -1)  # (B, T, 1, D)
        x = torch.cat([cls, tokens], dim=2)  # (B, T, N, D)
        time_mask = key_mask_to_attn_mask(mask, t, self.cfg.temporal_window)  # (B, 1, T, T)
        for block in self.blocks:
            if self.cfg.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, time_mask, mask, use_reentrant=False)  # (B, T, N, D)
            else:
                x = block(x, time_mask, mask)  # (B, T, N, D)
        out = self.norm(x[:, :, 0])  # (B, T, D)
        return torch.where(mask[..., None], out, self.missing.to(out.dtype))  # (B, T, D)
