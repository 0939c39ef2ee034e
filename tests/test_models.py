"""Tests of the joint audio-visual model, parametrised over the registered models (timm style).

``avdetect-base`` (a wav2vec2-base-sized encoder) only runs in the ``slow`` tests.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import avdetect
from avdetect.errors import CheckpointError, ConfigError, ModelInputError
from avdetect.models import CATEGORIES, DetectorTargets, compute_losses, create_model, list_models, model_config
from avdetect.models.detector import AVDetector, DetectorFeatures
from avdetect.models.visual import VISUAL_ENCODERS, VisualEncoder, register_visual_encoder
from avdetect.timegrid import SAMPLES_PER_FRAME
from avdetect.vocab import FACE_SIZE, MOUTH_SIZE

ROOT = Path(__file__).resolve().parents[1]

CPU_MODELS = ["avdetect-tiny", "avdetect-small"]

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The test machine has 2 shared cores: one thread per test process, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=CPU_MODELS)
def model(request) -> AVDetector:
    torch.manual_seed(0)
    return create_model(request.param)


def make_inputs(model: AVDetector, batch: int, frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = {
        "mouth": torch.randint(0, 256, (batch, frames, 3, MOUTH_SIZE, MOUTH_SIZE), generator=g, dtype=torch.uint8),
        "audio": 0.1 * torch.randn(batch, frames * SAMPLES_PER_FRAME, generator=g),
    }
    if model.config.visual.use_face:
        inputs["face"] = torch.randint(0, 256, (batch, frames, 3, FACE_SIZE, FACE_SIZE), generator=g, dtype=torch.uint8)
    return inputs


def assert_outputs_equal(a, b, atol=0.0):
    for name, x in a.to_dict().items():
        y = getattr(b, name)
        assert x.shape == y.shape, name
        if x.dtype == torch.bool:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, atol=atol, rtol=0.0, msg=lambda m: f"{name}: {m}")


# --------------------------------------------------------------------------- registry
def test_registry_lists_models_and_lazy_exports():
    assert {"avdetect-tiny", "avdetect-small", "avdetect-base"} <= set(list_models())
    assert avdetect.list_models() == list_models()
    assert avdetect.create_model is create_model


def test_unknown_model_and_bad_overrides_raise_config_error():
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("avdetect-huge")
    with pytest.raises(ConfigError, match="no_such_field"):
        model_config("avdetect-tiny", fusion={"no_such_field": 1})
    with pytest.raises(ConfigError):
        model_config("avdetect-tiny", **{"nosection.depth": 1})
    with pytest.raises(ConfigError):
        model_config("avdetect-tiny", bogus=1)


def test_overrides_apply():
    cfg = model_config("avdetect-tiny", fusion={"depth": 1}, **{"sync.max_offset": 5}, window_frames=50)
    assert (cfg.fusion.depth, cfg.sync.max_offset, cfg.window_frames) == (1, 5, 50)
    assert cfg.visual.dim == model_config("avdetect-tiny").visual.dim  # untouched fields keep their values


def test_tiny_is_under_one_million_parameters():
    assert create_model("avdetect-tiny").num_parameters() < 1_000_000


def test_base_config_is_wav2vec2_base_sized():
    cfg = model_config("avdetect-base")
    w = cfg.audio.wav2vec2
    assert (w["hidden_size"], w["num_hidden_layers"], w["num_attention_heads"], w["intermediate_size"]) == (768, 12, 12, 3072)
    assert cfg.visual.use_face and cfg.visual.mouth_size == MOUTH_SIZE


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("frames", [1, 9, 40])
def test_output_shapes_and_finite(model, frames):
    model.eval()
    with torch.no_grad():
        out = model(**make_inputs(model, 2, frames))
    k = 2 * model.config.sync.max_offset + 1
    expected = {
        "clip_logits": (2,), "category_logits": (2, len(CATEGORIES)),
        "frame_visual_logits": (2, frames), "frame_audio_logits": (2, frames), "frame_fused_logits": (2, frames),
        "boundary_logits": (2, frames, 2), "boundary_offsets": (2, frames, 2), "sync_logits": (2, frames, k),
        "visual_mask": (2, frames), "audio_mask": (2, frames), "frame_mask": (2, frames),
    }
    got = {name: tuple(t.shape) for name, t in out.to_dict().items()}
    assert got == expected
    for name, t in out.to_dict().items():
        if t.dtype != torch.bool:
            assert torch.isfinite(t).all(), name
    assert (out.boundary_offsets >= 0).all()


def test_float_and_uint8_crops_agree(model):
    model.eval()
    inputs = make_inputs(model, 1, 6)
    as_float = dict(inputs, mouth=inputs["mouth"].float() / 255.0)
    with torch.no_grad():
        assert_outputs_equal(model(**inputs), model(**as_float), atol=1e-5)


def test_masked_frames_do_not_change_outputs(model):
    model.eval()
    b, t = 2, 30
    inputs = make_inputs(model, b, t, seed=1)
    vm = torch.ones(b, t, dtype=torch.bool)
    am = torch.ones(b, t, dtype=torch.bool)
    vm[0, 5:12] = False  # no face for a while
    am[0, 20:26] = False  # audio dropout
    vm[1, 22:] = False  # batch padding: clip 1 is 22 frames long
    am[1, 22:] = False
    with torch.no_grad():
        ref = model(**inputs, visual_mask=vm, audio_mask=am)
    changed = {k: v.clone() for k, v in inputs.items()}
    g = torch.Generator().manual_seed(99)
    noise = torch.randint(0, 256, changed["mouth"].shape, generator=g, dtype=torch.uint8)
    changed["mouth"][~vm] = noise[~vm]
    if "face" in changed:
        changed["face"][~vm] = 0
    audio = changed["audio"].view(b, t, SAMPLES_PER_FRAME)
    audio[~am] = torch.randn(int((~am).sum()), SAMPLES_PER_FRAME, generator=g)
    with torch.no_grad():
        out = model(**changed, visual_mask=vm, audio_mask=am)
    assert_outputs_equal(ref, out, atol=1e-5)
    # and the masks do matter: changing a valid frame changes the outputs
    changed["mouth"][0, 0] = 255 - changed["mouth"][0, 0]
    with torch.no_grad():
        out2 = model(**changed, visual_mask=vm, audio_mask=am)
    assert not torch.allclose(out2.frame_fused_logits[0], ref.frame_fused_logits[0], atol=1e-5)


def test_missing_modalities(model):
    model.eval()
    inputs = make_inputs(model, 2, 12)
    face = inputs.get("face")
    with torch.no_grad():
        no_audio = model(inputs["mouth"], None, face=face)
        no_video = model(None, inputs["audio"])
        no_faces = model(**inputs, visual_mask=torch.zeros(2, 12, dtype=torch.bool))
    assert not no_audio.audio_mask.any() and no_audio.visual_mask.all()
    assert not no_video.visual_mask.any() and no_video.audio_mask.all()
    assert not no_faces.visual_mask.any()
    for out in (no_audio, no_video, no_faces):
        for name, t in out.to_dict().items():
            if t.dtype != torch.bool:
                assert torch.isfinite(t).all(), name
    # with every face frame masked, the crops are ignored: same result as no video at all
    assert_outputs_equal(no_faces, no_video, atol=1e-5)
    # sync logits are all "invalid" without audio
    assert (no_audio.sync_logits <= -1e3).all()


def test_eval_mode_is_deterministic(model):
    model.eval()
    inputs = make_inputs(model, 2, 10)
    with torch.no_grad():
        assert_outputs_equal(model(**inputs), model(**inputs))


def test_every_parameter_receives_a_gradient(model):
    model.train()
    model.zero_grad(set_to_none=True)
    b, t = 2, 24
    inputs = make_inputs(model, b, t, seed=3)
    vm = torch.ones(b, t, dtype=torch.bool)
    vm[1, :4] = False
    am = torch.ones(b, t, dtype=torch.bool)
    am[1, 20:] = False
    out = model(**inputs, visual_mask=vm, audio_mask=am)
    targets = DetectorTargets.from_segments(t, [[(3, 9)], []], [[(6, 14)], []])
    losses = compute_losses(out, targets, model.config.loss)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p.grad).all()]
    assert bad == []
    zero = [n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0]
    assert zero == []
    model.zero_grad(set_to_none=True)
    model.eval()


def test_forward_is_heads_of_features(model):
    """``forward`` = ``forward_heads(forward_features(...))``, bit for bit."""
    model.eval()
    inputs = make_inputs(model, 2, 12, seed=3)
    vm = torch.ones(2, 12, dtype=torch.bool)
    vm[1, 4:9] = False
    with torch.no_grad():
        feats = model.forward_features(**inputs, visual_mask=vm)
        out = model(**inputs, visual_mask=vm)
        assert_outputs_equal(out, model.forward_heads(feats))
    assert isinstance(feats, DetectorFeatures)
    assert feats.features.shape == (2, 12, model.config.fusion.dim)
    assert feats.sync_logits.shape == (2, 12, 2 * model.config.sync.max_offset + 1)
    assert torch.equal(feats.frame_mask, feats.visual_mask | feats.audio_mask)


# --------------------------------------------------------------------------- visual encoders
def test_import_models_loads_neither_opencv_nor_faces():
    code = "import avdetect.models, sys; assert 'cv2' not in sys.modules and 'avdetect.faces' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_visual_arch_default_and_unknown(tmp_path):
    assert model_config("avdetect-tiny").visual.arch == "spacetime"
    assert VISUAL_ENCODERS["spacetime"] is VisualEncoder
    assert isinstance(create_model("avdetect-tiny").visual, VisualEncoder)
    with pytest.raises(ConfigError, match=r"unknown visual encoder arch 'nope'.*spacetime"):
        create_model("avdetect-tiny", visual={"arch": "nope"})
    # a checkpoint naming an unknown arch: a CheckpointError that says which ones exist
    folder = create_model("avdetect-tiny").save_pretrained(tmp_path / "ckpt")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["config"]["visual"]["arch"] == "spacetime"  # recorded in new checkpoints
    meta["config"]["visual"]["arch"] = "nope"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="known: spacetime"):
        AVDetector.from_pretrained(folder)


def test_config_without_arch_loads_as_before(tmp_path):
    torch.manual_seed(0)
    model = create_model("avdetect-tiny").eval()
    folder = model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((folder / "config.json").read_text())
    del meta["config"]["visual"]["arch"]
    (folder / "config.json").write_text(json.dumps(meta))
    loaded = AVDetector.from_pretrained(folder)
    assert loaded.config.visual.arch == "spacetime"
    inputs = make_inputs(model, 1, 7)
    with torch.no_grad():
        assert_outputs_equal(model(**inputs), loaded(**inputs))


class _MeanPoolEncoder(nn.Module):
    """A toy encoder that follows the registry contract: mean colour of each crop -> dim."""

    def __init__(self, cfg):
        super().__init__()
        self.proj = nn.Linear(3, cfg.dim)
        self.missing = nn.Parameter(torch.zeros(cfg.dim))

    def forward(self, mouth, mask, face=None):
        x = mouth.float().mean(dim=(-1, -2))  # (B, T, 3)
        out = self.proj(x)  # (B, T, D)
        return torch.where(mask[..., None], out, self.missing.to(out.dtype))  # (B, T, D)


@pytest.fixture
def toy_arch():
    register_visual_encoder("test-meanpool")(_MeanPoolEncoder)
    yield "test-meanpool"
    VISUAL_ENCODERS.pop("test-meanpool")


def test_registered_arch_is_built_and_round_trips(toy_arch, tmp_path):
    with pytest.raises(ValueError, match="already registered"):
        register_visual_encoder(toy_arch)(_MeanPoolEncoder)
    model = create_model("avdetect-tiny", visual={"arch": toy_arch}).eval()
    assert isinstance(model.visual, _MeanPoolEncoder)
    loaded = AVDetector.from_pretrained(model.save_pretrained(tmp_path / "ckpt"))
    assert isinstance(loaded.visual, _MeanPoolEncoder)
    inputs = make_inputs(model, 2, 5)
    with torch.no_grad():
        assert_outputs_equal(model(**inputs), loaded(**inputs))


@pytest.mark.parametrize("arch", sorted(VISUAL_ENCODERS))
def test_every_registered_arch_follows_the_contract(arch):
    """Shape, masking and the ``missing`` vector for each registered visual encoder."""
    torch.manual_seed(0)
    model = create_model("avdetect-tiny", visual={"arch": arch}).eval()
    enc, dim = model.visual, model.config.visual.dim
    assert enc.missing.shape == (dim,)
    mouth = make_inputs(model, 2, 8, seed=2)["mouth"]
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, 2:5] = False
    with torch.no_grad():
        ref = enc(mouth, mask)
        changed = mouth.clone()
        changed[~mask] = 255 - changed[~mask]
        got = enc(changed, mask)
    assert ref.shape == (2, 8, dim) and torch.isfinite(ref).all()
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0.0)
    assert torch.equal(ref[0, 3], enc.missing.detach())


# --------------------------------------------------------------------------- shipped checkpoints
# Outputs on a fixed random input, computed before the visual ``arch`` field and the
# forward_features / forward_heads split existed: the shipped config.json files (no ``arch``)
# must load into exactly the same network.
_SHIPPED_REFERENCE = {
    "avdetect-small-real": {
        "clip": [3.225795, 3.29327], "cat1": [-1.344397, -1.803774, 1.737418, 1.346526],
        "fused0": [0.260717, 1.729854, 2.132382, 2.15995, 2.286057], "vis1": [-1.06856, -0.127959, -0.03339, -0.625745],
        "aud0": [1.571057, 1.83643, 1.914076, 2.11444], "off1": [21.283653, 39.459618],
    },
    "avdetect-small-synth": {
        "clip": [0.394535, 0.382197], "cat1": [0.590872, 0.611069, -0.404895, -1.351179],
        "fused0": [-0.891094, -0.9747, -0.961809, -0.996261, -0.999869], "vis1": [-1.322217, -1.036992, -0.92835, -1.278143],
        "aud0": [-2.319327, -2.332218, -2.357734, -2.349573], "off1": [15.185701, 15.820045],
    },
}


@pytest.mark.parametrize("name", sorted(_SHIPPED_REFERENCE))
def test_shipped_checkpoint_outputs_unchanged(name):
    folder = ROOT / "checkpoints" / name
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"{folder} not present")
    assert "arch" not in json.loads((folder / "config.json").read_text())["config"]["visual"]
    model = AVDetector.from_pretrained(folder)
    g = torch.Generator().manual_seed(1234)
    t = 50
    mouth = torch.randint(0, 256, (2, t, 3, MOUTH_SIZE, MOUTH_SIZE), generator=g, dtype=torch.uint8)
    audio = torch.randn(2, t * SAMPLES_PER_FRAME, generator=g) * 0.1
    vm = torch.ones(2, t, dtype=torch.bool)
    vm[1, 10:20] = False
    with torch.no_grad():
        out = model(mouth, audio, visual_mask=vm)
    got = {
        "clip": out.clip_logits, "cat1": out.category_logits[1], "fused0": out.frame_fused_logits[0, ::10],
        "vis1": out.frame_visual_logits[1, 5:25:5], "aud0": out.frame_audio_logits[0, 3::12],
        "off1": out.boundary_offsets[1, 30],
    }
    for key, ref in _SHIPPED_REFERENCE[name].items():
        torch.testing.assert_close(got[key], torch.tensor(ref), atol=2e-4, rtol=1e-5, msg=lambda m: f"{key}: {m}")


# --------------------------------------------------------------------------- checkpoints
def test_save_load_round_trip_is_exact(model, tmp_path):
    model.eval()
    folder = model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["architecture"] == "AVDetector"
    assert meta["avdetect_version"] == avdetect.__version__
    assert meta["config"]["name"] == model.config.name
    assert (folder / "model.safetensors").is_file()
    loaded = AVDetector.from_pretrained(folder)
    assert not loaded.training
    inputs = make_inputs(model, 2, 8)
    with torch.no_grad():
        assert_outputs_equal(model(**inputs), loaded(**inputs))
    # the weights file path works too
    AVDetector.from_pretrained(folder / "model.safetensors")


def test_checkpoint_errors(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    folder = create_model("avdetect-tiny").save_pretrained(tmp_path / "good")
    state = load_file(str(folder / "model.safetensors"))
    config = (folder / "config.json").read_text()

    def variant(name, weights=None, cfg=None):
        d = tmp_path / name
        d.mkdir()
        save_file(weights if weights is not None else state, str(d / "model.safetensors"))
        (d / "config.json").write_text(cfg if cfg is not None else config)
        return d

    missing = dict(state)
    missing.pop(next(iter(missing)))
    with pytest.raises(CheckpointError, match="missing key"):
        AVDetector.from_pretrained(variant("missing", weights=missing))
    with pytest.raises(CheckpointError, match="unexpected key"):
        AVDetector.from_pretrained(variant("unexpected", weights={**state, "extra.weight": torch.zeros(2)}))
    other_arch = json.loads(config)
    other_arch["architecture"] = "SomethingElse"
    with pytest.raises(CheckpointError, match="SomethingElse"):
        AVDetector.from_pretrained(variant("arch", cfg=json.dumps(other_arch)))
    wider = json.loads(config)
    wider["config"]["fusion"]["dim"] = 96
    with pytest.raises(CheckpointError):
        AVDetector.from_pretrained(variant("shape", cfg=json.dumps(wider)))
    bad_field = json.loads(config)
    bad_field["config"]["fusion"]["depthh"] = 2
    with pytest.raises(CheckpointError, match="depthh"):
        AVDetector.from_pretrained(variant("field", cfg=json.dumps(bad_field)))
    with pytest.raises(CheckpointError, match="invalid JSON"):
        AVDetector.from_pretrained(variant("json", cfg="{not json"))
    # tampered configs (issue 18): typed one-line errors, not internal ones, and nothing allocated
    for name, section, key, value, needle in (
        ("str_dim", "visual", "dim", "128", "invalid model config"),
        ("zero_heads", "fusion", "heads", 0, "invalid model config"),
        ("neg_depth", "visual", "depth", -3, "do not match the config"),
        ("huge", "fusion", "dim", 1 << 20, "tampered or mismatched config"),
    ):
        bad = json.loads(config)
        bad["config"][section][key] = value
        with pytest.raises(CheckpointError, match=needle) as err:
            AVDetector.from_pretrained(variant(name, cfg=json.dumps(bad)))
        assert "\n" not in str(err.value), name
    nocfg = tmp_path / "nocfg"
    nocfg.mkdir()
    save_file(state, str(nocfg / "model.safetensors"))
    with pytest.raises(CheckpointError, match="config.json"):
        AVDetector.from_pretrained(nocfg)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "config.json").write_text(config)
    (tmp_path / "garbage" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="safetensors"):
        AVDetector.from_pretrained(tmp_path / "garbage")
    with pytest.raises(CheckpointError, match="does not exist"):
        AVDetector.from_pretrained(tmp_path / "nowhere")


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_wav2vec2_loads_from_local_folder_offline(tmp_path, no_network):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(1)
    w2v_kwargs = dict(model_config("avdetect-tiny").audio.wav2vec2, hidden_size=48, num_hidden_layers=3,
                      num_attention_heads=4, intermediate_size=96)
    pretrained = Wav2Vec2Model(Wav2Vec2Config(**w2v_kwargs))
    pretrained.save_pretrained(tmp_path / "w2v")

    model = create_model("avdetect-tiny", audio={"pretrained_dir": str(tmp_path / "w2v")}).eval()
    for name, p in pretrained.state_dict().items():
        assert torch.equal(model.audio.wav2vec2.state_dict()[name], p), name
    # the loaded architecture is recorded, so the checkpoint rebuilds without the folder
    assert model.config.audio.pretrained_dir is None
    assert model.config.audio.wav2vec2["hidden_size"] == 48
    assert model.audio.layer_weights.shape == (4,)
    ckpt = model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "w2v" / "model.safetensors").unlink()
    loaded = AVDetector.from_pretrained(ckpt)
    inputs = make_inputs(model, 1, 6)
    with torch.no_grad():
        assert_outputs_equal(model(**inputs), loaded(**inputs))
    # the folder is now broken: a clear error, no download attempt
    with pytest.raises(CheckpointError, match="w2v"):
        create_model("avdetect-tiny", audio={"pretrained_dir": str(tmp_path / "w2v")})
    (tmp_path / "w2v" / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="cannot load wav2vec2"):
        create_model("avdetect-tiny", audio={"pretrained_dir": str(tmp_path / "w2v")})
    with pytest.raises(CheckpointError, match="no config.json"):
        create_model("avdetect-tiny", audio={"pretrained_dir": str(tmp_path / "absent")})
    # a folder holding only a pickled pytorch_model.bin: refused by name, never unpickled
    (tmp_path / "w2v" / "model.safetensors").unlink()
    torch.save(pretrained.state_dict(), tmp_path / "w2v" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin is a pickle, which avdetect never loads"):
        create_model("avdetect-tiny", audio={"pretrained_dir": str(tmp_path / "w2v")})


def test_freeze_options():
    frozen = create_model("avdetect-tiny", audio={"freeze": True})
    assert not any(p.requires_grad for p in frozen.audio.wav2vec2.parameters())
    frozen.train()
    assert not frozen.audio.wav2vec2.training and frozen.visual.training
    assert frozen.num_parameters(trainable_only=True) < frozen.num_parameters()
    fe = create_model("avdetect-tiny", audio={"freeze_feature_encoder": True})
    assert not any(p.requires_grad for p in fe.audio.wav2vec2.feature_extractor.parameters())
    assert all(p.requires_grad for p in fe.audio.wav2vec2.encoder.parameters())
    last = create_model("avdetect-tiny", audio={"layer_weighted_sum": False, "use_mel": False}).eval()
    assert last.audio.layer_weights is None
    with torch.no_grad():
        out = last(**make_inputs(last, 1, 5))
    assert torch.isfinite(out.frame_fused_logits).all()


def test_face_crops_variant():
    m = create_model("avdetect-tiny", visual={"use_face": True, "face_size": 32, "face_patch_size": 16}).eval()
    inputs = make_inputs(m, 2, 6)
    assert "face" in inputs
    with torch.no_grad():
        out = m(**inputs)
    assert out.frame_fused_logits.shape == (2, 6)
    with pytest.raises(ModelInputError, match="face"):
        m(inputs["mouth"], inputs["audio"])


def test_input_contract_errors():
    m = create_model("avdetect-tiny").eval()
    inputs = make_inputs(m, 1, 4)
    with pytest.raises(ModelInputError, match="channels last"):
        m(inputs["mouth"].permute(0, 1, 3, 4, 2), inputs["audio"])
    with pytest.raises(ModelInputError, match="audio must be"):
        m(inputs["mouth"], inputs["audio"][:, :-1])
    with pytest.raises(ModelInputError, match="neither"):
        m(None, None)
    with pytest.raises(ModelInputError, match="visual_mask"):
        m(**inputs, visual_mask=torch.ones(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("n_in,n_out", [(96, 48), (128, 64), (100, 48), (40, 48), (48, 48)])
def test_crop_resize_matrices_are_f_interpolate(n_in, n_out):
    """The crop stem resizes by two matrix products; they are F.interpolate's bilinear filter
    (antialiased when shrinking), shrinking, enlarging or not at all, to float rounding."""
    from avdetect.models.visual import resize_matrix

    x = torch.randint(0, 256, (5, 3, n_in, n_in), generator=torch.Generator().manual_seed(0)).float()
    ref = F.interpolate(x, size=(n_out, n_out), mode="bilinear", align_corners=False, antialias=n_in > n_out)
    a = resize_matrix(n_in, n_out, x.dtype, x.device)
    torch.testing.assert_close(a @ x @ a.T, ref, atol=1e-3, rtol=1e-5)  # (0..255 pixel values)


@pytest.mark.parametrize("frames,size_in,dtype", [(23, 96, torch.uint8), (100, 96, torch.uint8), (7, 48, torch.float32)])
def test_crop_stem_in_chunks_equals_the_whole_window_at_once(frames, size_in, dtype, monkeypatch):
    """The crop stem resizes, normalises and masks a few frames at a time (cache-sized chunks);
    every step is per frame, so the tokens are the whole-window computation's bit for bit, for a
    window that is not a multiple of the chunk, a batch of two with different masks, uint8 or
    float crops, resized or not; and it trains (the gradient is the whole-window one)."""
    from einops import rearrange

    from avdetect.models import visual as V

    torch.manual_seed(0)
    stem = V._CropStem(48, 8, 3, 32)
    g = torch.Generator().manual_seed(1)
    crops = torch.randint(0, 256, (2, frames, 3, size_in, size_in), generator=g)
    crops = crops.to(torch.uint8) if dtype == torch.uint8 else crops.float() / 255.0
    mask = torch.rand(2, frames, generator=g) > 0.3

    def whole(crops, mask):  # the stem before chunking: one pass over the whole window
        scale = 1.0 / 255.0 if crops.dtype == torch.uint8 else 1.0
        x = rearrange(crops.float(), "b t c h w -> (b t) c h w")
        if size_in != 48:
            x = V.resize_matrix(size_in, 48, x.dtype, x.device) @ x @ V.resize_matrix(size_in, 48, x.dtype, x.device).T
        x = x * (scale / stem.std) - stem.mean / stem.std
        x = rearrange(x, "(b t) c h w -> b c t h w", b=2) * mask[:, None, :, None, None].float()
        return rearrange(stem.proj(x), "b d t h w -> b t (h w) d") + stem.pos

    assert V._STEM_CHUNK_FRAMES < frames or frames == 7  # several chunks in the long cases
    with torch.no_grad():
        assert torch.equal(stem(crops, mask), whole(crops, mask))
    stem(crops, mask).square().mean().backward()
    got = stem.proj.weight.grad.clone()
    stem.zero_grad()
    whole(crops, mask).square().mean().backward()
    torch.testing.assert_close(got, stem.proj.weight.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("window", [None, 3])
def test_temporal_attention_on_strided_views_equals_the_copied_layout(window):
    """The space-time block's temporal attention takes q, k and v as strided views of one
    projection of the tokens in (B, N, T) order; its output is that of q, k and v each copied
    into (B, N*H, T, E) bit for bit: a batch of two clips with different invalid frames, with and
    without a local window; and the gradients agree."""
    from einops import rearrange

    from avdetect.models.layers import key_mask_to_attn_mask, masked_attention
    from avdetect.models.visual import SpaceTimeBlock

    torch.manual_seed(0)
    blk = SpaceTimeBlock(32, 4, 2.0, 0.0)
    x = torch.randn(2, 20, 5, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
    frames = torch.ones(2, 20, dtype=torch.bool)
    frames[0, 3:6], frames[1, 12:] = False, False
    mask = key_mask_to_attn_mask(frames, 20, window)

    def copied(x):  # the temporal step before: q, k, v rearranged (copied) into (B, N*H, T, E)
        q, k, v = rearrange(blk.qkv_t(blk.norm_t(x)), "b t n (three h e) -> three b (n h) t e", three=3, h=4)
        return blk.out_t(rearrange(masked_attention(q, k, v, mask), "b (n h) t e -> b t n (h e)", n=5))

    got, ref = blk.temporal(blk.norm_t(x), mask), copied(x)
    assert torch.equal(got, ref)
    g1, = torch.autograd.grad(got.square().sum(), x)
    g2, = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-5)


def test_visual_encoder_has_no_absolute_time(model):
    """A clip placed later in the window (masked frames around it) gives the same features,
    so the sync head can only match audio and video by content, never by position."""
    enc = model.visual.eval()
    clip = make_inputs(model, 1, 6, seed=5)["mouth"]
    window = torch.zeros(1, 16, *clip.shape[2:], dtype=torch.uint8)
    early, late = window.clone(), window.clone()
    early[:, 1:7], late[:, 8:14] = clip, clip
    m_early = torch.zeros(1, 16, dtype=torch.bool)
    m_late = m_early.clone()
    m_early[:, 1:7], m_late[:, 8:14] = True, True
    face = None
    if model.config.visual.use_face:
        face = torch.zeros(1, 16, 3, FACE_SIZE, FACE_SIZE, dtype=torch.uint8)
    with torch.no_grad():
        a = enc(early, m_early, face)[:, 1:7]
        b = enc(late, m_late, face)[:, 8:14]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_sync_logits_index_offsets():
    """sync_logits[b, t, K + k] compares video frame t with audio frame t + k."""
    m = create_model("avdetect-tiny", **{"sync.max_offset": 3})
    sync = m.sync.eval()
    t, dim = 10, m.config.visual.dim
    v = torch.randn(1, t, dim)
    a = torch.randn(1, t, dim)
    vm = torch.ones(1, t, dtype=torch.bool)
    am = torch.ones(1, t, dtype=torch.bool)
    am[0, 7] = False
    with torch.no_grad():
        logits = sync.sync_logits(v, a, vm, am)
        ev = torch.nn.functional.normalize(sync.embed_v(v), dim=-1)[0]
        ea = torch.nn.functional.normalize(sync.embed_a(a), dim=-1)[0]
        scale = sync.logit_scale.exp()
    for ti in range(t):
        for k in range(-3, 4):
            j = ti + k
            if 0 <= j < t and j != 7:
                torch.testing.assert_close(logits[0, ti, 3 + k], (ev[ti] @ ea[j]) * scale)
            else:
                assert logits[0, ti, 3 + k] <= -1e3


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_base_forward_backward():
    torch.manual_seed(0)
    m = create_model("avdetect-base")
    assert m.num_parameters() > 90_000_000
    m.train()
    t = 25
    inputs = make_inputs(m, 1, t)
    out = m(**inputs)
    targets = DetectorTargets.from_segments(t, [[(3, 9)]], [[]])
    compute_losses(out, targets, m.config.loss)["total"].backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert out.frame_fused_logits.shape == (1, t)


# --------------------------------------------------------------------------- learning
def synthetic_batch(batch: int, frames: int, seed: int):
    """Toy clips: fake visual frames carry a checkerboard, fake audio frames a 3 kHz tone."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(60, 190, (batch, 1, 3, 12, 12), generator=g).float()
    mouth = torch.nn.functional.interpolate(base.flatten(0, 1), size=(MOUTH_SIZE, MOUTH_SIZE), mode="bilinear")
    mouth = mouth.view(batch, 1, 3, MOUTH_SIZE, MOUTH_SIZE).repeat(1, frames, 1, 1, 1)
    mouth = mouth + 10 * torch.randn(batch, frames, 1, MOUTH_SIZE, MOUTH_SIZE, generator=g)
    audio = 0.05 * torch.randn(batch, frames, SAMPLES_PER_FRAME, generator=g)
    board = ((torch.arange(MOUTH_SIZE)[:, None] // 8 + torch.arange(MOUTH_SIZE)[None, :] // 8) % 2) * 60.0
    tone = 0.3 * torch.sin(2 * torch.pi * 3000 * torch.arange(SAMPLES_PER_FRAME) / 16000)
    vis, aud = [], []
    for b in range(batch):
        segs = []
        for kind in ("v", "a"):
            if torch.rand(1, generator=g) < 0.6:
                s = int(torch.randint(0, frames - 4, (1,), generator=g))
                e = int(torch.randint(s + 2, frames + 1, (1,), generator=g))
                segs.append((kind, s, e))
        vis.append([(s, e) for k, s, e in segs if k == "v"])
        aud.append([(s, e) for k, s, e in segs if k == "a"])
        for s, e in vis[-1]:
            mouth[b, s:e] += board
        for s, e in aud[-1]:
            audio[b, s:e] += tone
    inputs = {"mouth": mouth.clamp(0, 255).to(torch.uint8), "audio": audio.flatten(1)}
    return inputs, DetectorTargets.from_segments(frames, vis, aud)


def _auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    pos, neg = scores[labels > 0], scores[labels <= 0]
    return float((pos[:, None] > neg[None, :]).float().mean() + 0.5 * (pos[:, None] == neg[None, :]).float().mean())


def test_tiny_overfits_one_batch():
    torch.manual_seed(0)
    m = create_model("avdetect-tiny").train()
    inputs, targets = synthetic_batch(2, 16, seed=0)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    losses = []
    for _ in range(12):
        loss = compute_losses(m(**inputs), targets, m.config.loss)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_grad_checkpointing_gives_the_same_gradients():
    inputs, targets = synthetic_batch(1, 8, seed=2)
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        m = create_model("avdetect-tiny", visual={"grad_checkpointing": flag},
                         audio={"wav2vec2": dict(model_config("avdetect-tiny").audio.wav2vec2, hidden_dropout=0.0,
                                                 attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0)})
        m.train()
        compute_losses(m(**inputs), targets, m.config.loss)["total"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.visual.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_tiny_learns_to_localise_synthetic_fakes():
    torch.manual_seed(0)
    m = create_model("avdetect-tiny").train()
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    for step in range(60):
        inputs, targets = synthetic_batch(4, 25, seed=100 + step)
        loss = compute_losses(m(**inputs), targets, m.config.loss)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    inputs, targets = synthetic_batch(8, 25, seed=7)
    with torch.no_grad():
        out = m(**inputs)
    assert _auc(out.frame_visual_logits.flatten(), targets.frame_visual.flatten()) > 0.9
    assert _auc(out.frame_audio_logits.flatten(), targets.frame_audio.flatten()) > 0.9
    assert _auc(out.frame_fused_logits.flatten(), targets.frame_fused.flatten()) > 0.9


@pytest.mark.slow
def test_real_clip_through_media_faces_and_model(samples_dir):
    """The input contract matches what media + faces produce on a real talking-head clip."""
    import numpy as np

    from avdetect.faces import track_faces
    from avdetect.media import load_media

    clip = sorted(samples_dir.glob("*.mp4"))[0]
    media = load_media(clip)
    track = track_faces(media)
    n = min(50, len(track))
    mouth = torch.from_numpy(np.ascontiguousarray(track.mouth[:n])).permute(0, 3, 1, 2)[None]  # (1, n, 3, 96, 96)
    wave = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
    audio = media.audio[: n * SAMPLES_PER_FRAME]
    wave[: len(audio)] = audio
    m = create_model("avdetect-tiny").eval()
    with torch.no_grad():
        out = m(mouth, torch.from_numpy(wave)[None], visual_mask=torch.from_numpy(track.valid[:n])[None])
    assert out.frame_fused_logits.shape == (1, n)
    assert torch.isfinite(out.frame_fused_logits).all()
    assert out.visual_mask.float().mean().item() == pytest.approx(float(track.valid[:n].mean()))


def _talking_batch(batch: int, frames: int, seed: int) -> dict:
    """Toy talking heads: the mouth box is bright exactly when the voice is on."""
    g = torch.Generator().manual_seed(seed)
    env = (torch.rand(batch, frames, generator=g) < 0.5).float()  # (B, T) mouth open / voice on
    mouth = torch.full((batch, frames, 3, MOUTH_SIZE, MOUTH_SIZE), 60.0)
    mouth[:, :, :, 32:64, 24:72] += 150 * env[:, :, None, None, None]
    mouth += 10 * torch.randn(mouth.shape, generator=g)
    voice = 0.3 * torch.randn(batch, frames, SAMPLES_PER_FRAME, generator=g) * env[..., None]
    audio = 0.02 * torch.randn(batch, frames, SAMPLES_PER_FRAME, generator=g) + voice
    return {"mouth": mouth.clamp(0, 255).to(torch.uint8), "audio": audio.flatten(1)}


@pytest.mark.slow
def test_sync_head_learns_offsets_self_supervised():
    """Trained only on in-sync clips (target offset 0), the head finds shifts it never saw."""
    from avdetect.models.losses import sync_loss

    torch.manual_seed(0)
    m = create_model("avdetect-tiny").train()
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    frames = 25
    targets = DetectorTargets.from_segments(frames, [[]] * 4, [[]] * 4)
    for step in range(300):
        loss = sync_loss(m(**_talking_batch(4, frames, step)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x = _talking_batch(8, frames, 999)
    k = m.config.sync.max_offset
    for shift in (0, 2, -3):
        audio = torch.roll(x["audio"].view(8, frames, SAMPLES_PER_FRAME), shifts=shift, dims=1).flatten(1)
        with torch.no_grad():
            pred = m(x["mouth"], audio).sync_logits.argmax(-1) - k  # (B, T)
        lo, hi = max(0, -shift), min(frames, frames - shift)
        accuracy = (pred[:, lo:hi] == shift).float().mean().item()
        assert accuracy > 0.1, (shift, accuracy)  # chance is 1 / 31
