"""The inference-only wav2vec2 (avdetect.models.wav2vec2) is transformers' Wav2Vec2Model in eval
mode: same parameter names, same outputs, and the detection path never imports transformers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avdetect.models import create_model
from avdetect.models.detector import AVDetector
from avdetect.models.wav2vec2 import DEFAULTS, Wav2Vec2Inference, unsupported
from avdetect.timegrid import SAMPLES_PER_FRAME

ROOT = Path(__file__).resolve().parents[1]

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48,
         "conv_dim": [16, 16, 16, 16, 16, 16, 16], "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}

CONFIGS = {
    "stable-layer": {**SMALL, "feat_extract_norm": "layer", "do_stable_layer_norm": True, "mask_time_prob": 0.0},
    "base-group": {**SMALL, "feat_extract_norm": "group", "do_stable_layer_norm": False},  # wav2vec2-base kind
    "odd-kernel-bias-relu": {**SMALL, "num_conv_pos_embeddings": 7, "conv_bias": True, "hidden_act": "relu",
                             "feat_extract_activation": "relu", "layer_norm_eps": 1e-3, "mask_feature_prob": 0.1},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_defaults_are_transformers_defaults():
    from transformers import Wav2Vec2Config

    ref = Wav2Vec2Config()
    for key, value in DEFAULTS.items():
        got = getattr(ref, key)
        assert (list(got) if isinstance(got, tuple) else got) == (list(value) if isinstance(value, tuple) else value), key


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_same_network_as_transformers(kind):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    ref = Wav2Vec2Model(Wav2Vec2Config(**CONFIGS[kind])).eval()
    with torch.no_grad():  # random non-trivial norms and biases, so that every parameter matters
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = Wav2Vec2Inference(CONFIGS[kind])
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    wave = torch.randn(2, 37 * SAMPLES_PER_FRAME)
    with torch.no_grad():
        a = ref(wave, output_hidden_states=True)
        b = ours(wave, output_hidden_states=True)
        c = ours(wave)
    torch.testing.assert_close(b.last_hidden_state, a.last_hidden_state, atol=2e-5, rtol=1e-5)
    assert c.hidden_states is None and torch.equal(c.last_hidden_state, b.last_hidden_state)
    assert len(b.hidden_states) == len(a.hidden_states) == CONFIGS[kind]["num_hidden_layers"] + 1
    for i, (x, y) in enumerate(zip(b.hidden_states, a.hidden_states)):
        torch.testing.assert_close(x, y, atol=2e-5, rtol=1e-5, msg=lambda m: f"hidden state {i}: {m}")


def test_training_is_refused_and_unsupported_configs_use_transformers(tmp_path):
    ours = Wav2Vec2Inference(CONFIGS["stable-layer"])
    assert not ours.training
    ours.eval()
    with pytest.raises(RuntimeError, match="inference-only"):
        ours.train()
    assert unsupported(CONFIGS["base-group"]) is None
    assert "adapter" in unsupported({**SMALL, "add_adapter": True})
    assert "hidden_act" in unsupported({**SMALL, "hidden_act": "swish"})
    with pytest.raises(ValueError, match="does not cover"):
        Wav2Vec2Inference({**SMALL, "hidden_act": "swish"})
    # a checkpoint whose wav2vec2 the copy does not cover still loads for inference, with transformers
    from transformers import Wav2Vec2Model

    torch.manual_seed(0)
    w2v = {**create_model("avdetect-tiny").config.audio.wav2vec2, "hidden_act": "gelu_new"}
    folder = create_model("avdetect-tiny", audio={"wav2vec2": w2v}).save_pretrained(tmp_path / "ck")
    assert isinstance(AVDetector.from_pretrained(folder, inference_only=True).audio.wav2vec2, Wav2Vec2Model)


@pytest.mark.parametrize("name", ["avdetect-tiny", "avdetect-small"])
def test_inference_only_model_gives_the_same_outputs(name, tmp_path):
    torch.manual_seed(0)
    folder = create_model(name).save_pretrained(tmp_path / name)
    full = AVDetector.from_pretrained(folder)
    fast = AVDetector.from_pretrained(folder, inference_only=True)
    assert isinstance(fast.audio.wav2vec2, Wav2Vec2Inference) and not fast.training
    g = torch.Generator().manual_seed(3)
    t = 30
    mouth = torch.randint(0, 256, (2, t, 3, 96, 96), generator=g, dtype=torch.uint8)
    audio = 0.1 * torch.randn(2, t * SAMPLES_PER_FRAME, generator=g)
    am = torch.ones(2, t, dtype=torch.bool)
    am[1, 20:] = False
    with torch.no_grad():
        a, b = full(mouth, audio, audio_mask=am), fast(mouth, audio, audio_mask=am)
    for key, x in a.to_dict().items():
        torch.testing.assert_close(getattr(b, key), x, atol=1e-5, rtol=1e-5, msg=lambda m: f"{key}: {m}")
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()


def test_detection_imports_neither_transformers_nor_dynamo(tmp_path):
    """A cold detection (weights loaded as the API loads them, one clip through the model)
    imports no transformers, torch._dynamo or scipy: seconds of start-up."""
    torch.manual_seed(0)
    folder = create_model("avdetect-tiny").save_pretrained(tmp_path / "ck")
    code = (
        "import sys, torch\n"
        "from avdetect.api import _load_model\n"
        f"model, _ = _load_model({str(folder)!r}, 'cpu')\n"
        "t = 8\n"
        "with torch.no_grad():\n"
        "    model(torch.zeros(1, t, 3, 96, 96, dtype=torch.uint8), torch.zeros(1, t * 640))\n"
        "bad = [m for m in ('transformers', 'torch._dynamo', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
