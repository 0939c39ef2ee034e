"""A forward-only wav2vec2 for inference that does not import ``transformers``.

Importing ``transformers.Wav2Vec2Model`` costs about 5 s of CPU on every cold start (it pulls
in ``torch.distributed``, ``torch._dynamo`` and ``scipy.optimize``); on a 2-core machine that is
a fifth of a whole 2-minute detection. :class:`Wav2Vec2Inference` is the same network as
``transformers``' ``Wav2Vec2Model`` in eval mode, with the same parameter names, so the
same ``model.safetensors`` loads into either: the convolutional feature encoder (``"group"`` or
``"layer"`` norm), the feature projection, the weight-normed positional convolution and the
post-norm or pre-norm ("stable layer norm") transformer encoder. Its output has the
``last_hidden_state`` and ``hidden_states`` (the first layer's input, then every layer's output)
that ``Wav2Vec2Model(..., output_hidden_states=True)`` returns. Tests compare the two to float
rounding on random weights of every supported kind of config.

It is built only for inference (``AVDetector.from_pretrained(..., inference_only=True)``, which
the detection API uses): it refuses ``train()``, so training, SpecAugment masking and LayerDrop
stay ``transformers``' own. A config it does not cover (adapters, other activations) is built
with ``transformers`` instead (:func:`unsupported`).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: ``transformers.Wav2Vec2Config``'s defaults for the fields this module reads (a test checks
#: them against the installed ``transformers``); a checkpoint's ``wav2vec2`` dict overrides them.
DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "feat_extract_activation": "gelu", "feat_extract_norm": "group",
    "conv_dim": (512, 512, 512, 512, 512, 512, 512), "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2), "conv_bias": False, "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": False, "layer_norm_eps": 1e-5,
    "mask_time_prob": 0.05, "mask_feature_prob": 0.0, "add_adapter": False, "adapter_attn_dim": None,
}

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def resolve(overrides: dict) -> SimpleNamespace:
    """The full config: :data:`DEFAULTS` updated with ``overrides`` (unknown keys are kept)."""
    return SimpleNamespace(**{**DEFAULTS, **overrides})


def unsupported(overrides: dict) -> str | None:
    """Why :class:`Wav2Vec2Inference` cannot build this config (None: it can)."""
    c = resolve(overrides)
    if c.add_adapter or c.adapter_attn_dim is not None:
        return "adapter layers"
    for key in ("hidden_act", "feat_extract_activation"):
        if getattr(c, key) not in _ACTIVATIONS:
            return f"{key}={getattr(c, key)!r}"
    if c.feat_extract_norm not in ("group", "layer"):
        return f"feat_extract_norm={c.feat_extract_norm!r}"
    if not len(c.conv_dim) == len(c.conv_kernel) == len(c.conv_stride):
        return "conv_dim, conv_kernel and conv_stride of different lengths"
    if getattr(c, "num_feat_extract_layers", len(c.conv_dim)) != len(c.conv_dim):
        return "num_feat_extract_layers differs from len(conv_dim)"
    return None


@dataclass
class Wav2Vec2Output:
    last_hidden_state: torch.Tensor  # (B, Ta, H)
    hidden_states: tuple[torch.Tensor, ...] | None  # L + 1 entries of (B, Ta, H), or None


class _ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None, act):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=kernel, stride=stride, bias=bias)
        self.norm = norm
        if norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out)
        elif norm == "group":
            self.layer_norm = nn.GroupNorm(c_out, c_out)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S)
        x = self.conv(x)
        if self.norm == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        elif self.norm == "group":
            x = self.layer_norm(x)
        return self.act(x)


class _FeatureEncoder(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        act = _ACTIVATIONS[c.feat_extract_activation]
        layers = []
        for i, (dim, kernel, stride) in enumerate(zip(c.conv_dim, c.conv_kernel, c.conv_stride)):
            norm = "layer" if c.feat_extract_norm == "layer" else ("group" if i == 0 else None)
            layers.append(_ConvLayer(c.conv_dim[i - 1] if i else 1, dim, kernel, stride, c.conv_bias, norm, act))
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # (B, S) -> (B, C, Ta)
        x = wave[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class _FeatureProjection(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c.conv_dim[-1], eps=c.layer_norm_eps)
        self.projection = nn.Linear(c.conv_dim[-1], c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class _WeightNormParams(nn.Module):
    """Where ``torch.nn.utils.parametrizations.weight_norm`` keeps a weight: ``original0`` is its
    norm per kernel position ``g`` (1, 1, K), ``original1`` its direction ``v``."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.original0 = nn.Parameter(torch.ones(1, 1, shape[2]))
        self.original1 = nn.Parameter(torch.ones(shape))


class _WeightNormConv1d(nn.Module):
    """A grouped ``Conv1d`` whose weight is ``g * v / |v|`` (norm over all but dim 2), with the
    parameter names of a weight-normed ``nn.Conv1d`` (``parametrizations.weight.original0/1``,
    ``bias``). Built from plain parameters: registering torch's parametrization computes a norm,
    which on the meta device imports ``torch._dynamo``."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        if dim % groups:
            raise ValueError(f"hidden_size {dim} is not a multiple of num_conv_pos_embedding_groups {groups}")
        self.padding, self.groups = kernel // 2, groups
        self.parametrizations = nn.Module()
        self.parametrizations.weight = _WeightNormParams((dim, dim // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.parametrizations.weight
        weight = torch._weight_norm(p.original1, p.original0, 2)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _PositionalConv(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        k = c.num_conv_pos_embeddings
        self.conv = _WeightNormConv1d(c.hidden_size, k, c.num_conv_pos_embedding_groups)
        self.trim = 1 if k % 2 == 0 else 0  # an even kernel makes one extra step
        self.act = _ACTIVATIONS[c.feat_extract_activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H)
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return self.act(y).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_size {dim} is not a multiple of num_attention_heads {heads}")
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H)
        b, t, d = x.shape

        def split(y):
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, heads, T, E)

        y = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class _FeedForward(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.intermediate_dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output_dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.act = _ACTIVATIONS[c.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(self.act(self.intermediate_dense(x)))


class _EncoderLayer(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.stable = c.do_stable_layer_norm  # pre-norm; otherwise post-norm (wav2vec2-base)
        self.attention = _Attention(c.hidden_size, c.num_attention_heads)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.feed_forward = _FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stable:
            x = x + self.attention(self.layer_norm(x))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class _Encoder(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.stable = c.do_stable_layer_norm
        self.pos_conv_embed = _PositionalConv(c)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.layers = nn.ModuleList(_EncoderLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x: torch.Tensor, keep: bool) -> Wav2Vec2Output:
        x = x + self.pos_conv_embed(x)
        if not self.stable:
            x = self.layer_norm(x)
        states = [x] if keep else None
        for layer in self.layers:
            x = layer(x)
            if keep:
                states.append(x)
        if self.stable:
            x = self.layer_norm(x)
        return Wav2Vec2Output(last_hidden_state=x, hidden_states=tuple(states) if keep else None)


class Wav2Vec2Inference(nn.Module):
    """``transformers.Wav2Vec2Model`` in eval mode without ``transformers`` (module docstring).

    ``config`` is a ``Wav2Vec2Config``'s keyword arguments (as in ``AudioConfig.wav2vec2``);
    ``self.config`` is the resolved namespace (``hidden_size``, ``num_hidden_layers``, ...).
    """

    def __init__(self, config: dict):
        super().__init__()
        reason = unsupported(config)
        if reason:
            raise ValueError(f"Wav2Vec2Inference does not cover this config: {reason}")
        self.config = c = resolve(config)
        self.feature_extractor = _FeatureEncoder(c)
        self.feature_projection = _FeatureProjection(c)
        if c.mask_time_prob > 0.0 or c.mask_feature_prob > 0.0:  # present in the weights, used in training only
            self.masked_spec_embed = nn.Parameter(torch.zeros(c.hidden_size))
        self.encoder = _Encoder(c)
        super().train(False)

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("this wav2vec2 is the inference-only copy (Wav2Vec2Inference); load the model "
                               "with AVDetector.from_pretrained(..., inference_only=False) to train it")
        return super().train(False)

    def freeze_feature_encoder(self) -> None:
        self.feature_extractor.requires_grad_(False)

    def forward(self, input_values: torch.Tensor, output_hidden_states: bool = False) -> Wav2Vec2Output:
        """``input_values`` (B, S) float waveform -> 50 Hz features (:class:`Wav2Vec2Output`)."""
        x = self.feature_extractor(input_values).transpose(1, 2)  # (B, Ta, C)
        return self.encoder(self.feature_projection(x), keep=output_hidden_states)
