"""Forensic evidence: the Evidence API, missing streams, generated audio splices, and the sync
track on real clips manipulated with ffmpeg with known spans (skipped without ../shared/samples)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from avdetect.errors import ConfigError
from avdetect.forensics import Evidence, analysis_names, analyze
from avdetect.media import load_media
from conftest import run_ffmpeg, sample_clips

SR = 16000


def iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


# ---------------------------------------------------------------------------------------
def test_evidence_dict_and_validation():
    e = Evidence("sync_span", 1.0, 2.5, {"offset_s": np.float32(0.2), "n": np.int64(3)}, "x.", 1.7, "note")
    assert e.strength == 1.0
    d = e.to_dict()
    json.dumps(d)
    assert d["value"] == {"offset_s": 0.2, "n": 3} and d["start_s"] == 1.0
    assert Evidence("container", None, None, 1, "y.", -1, "n").to_dict()["strength"] == 0.0
    with pytest.raises(ValueError):
        Evidence("x", 1.0, None, 0, "", 0, "")
    with pytest.raises(ValueError):
        Evidence("x", 2.0, 1.0, 0, "", 0, "")


def test_unknown_kind_is_a_config_error(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    with pytest.raises(ConfigError, match="unknown evidence kind"):
        analyze(load_media(path), kinds=["sync", "bogus"])


def _tiny_analysis(kind: str = "tiny_peak", emit: str | None = None):
    """A test analysis: needs audio, emits one span item of ``emit`` (default: its own kind) and
    a per-frame track its lane draws."""
    from avdetect.forensics import Analysis, LaneSeries, Track
    from avdetect.timegrid import frames_to_seconds

    def run(inputs):
        n = len(inputs.audio)
        item = Evidence(emit or kind, 1.0, 1.5, {"level": 0.9}, "a tiny peak.", 0.7, "a test analysis")
        return [item], {"tiny": Track(frames_to_seconds(np.arange(n)), {"level": np.linspace(0.0, 1.0, n)}, "test level")}

    return Analysis("tiny", kinds=(kind,), labels={kind: "tiny peak"}, needs=("audio",), run=run,
                    series={kind: LaneSeries("tiny", ("level",), 1.0, "max", note="test level")})


def test_a_registered_analysis_reaches_the_report_and_its_lane(tmp_path):
    """A new evidence kind is one Analysis and one register_analysis call: analyze() runs it (or
    skips it with the reason when its input is missing), report_dict() carries its kind, label
    and series, and the report's lanes show it with its line, no other file touched."""
    from avdetect.forensics import register_analysis, unregister_analysis
    from avdetect.report.lanes import evidence_lanes
    from test_report_html import _report

    wav = tmp_path / "talk.wav"
    sf.write(wav, _speechlike(3, np.random.default_rng(5)), SR)
    mute = tmp_path / "mute.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=1", "-c:v", "libx264", "-preset", "ultrafast", str(mute))
    register_analysis(_tiny_analysis())
    try:
        assert analysis_names()[-1] == "tiny"
        res = analyze(load_media(wav))
        silent = analyze(load_media(mute), kinds=["container", "tiny"])
    finally:
        unregister_analysis("tiny")
    assert "tiny" not in analysis_names()
    assert res.ran[-1] == "tiny" and "tiny" in res.seconds and [e.kind for e in res.of_kind("tiny_peak")] == ["tiny_peak"]
    assert silent.skipped["tiny"] == "the file has no audio stream" and silent.ran == ["container"]
    rd = res.report_dict()
    assert set(rd) == {"ran", "skipped", "seconds", "tracks", "catalog"}
    assert all(v == round(v, 4) for v in rd["seconds"].values())
    assert rd["catalog"]["tiny_peak"] == {"label": "tiny peak", "analysis": "tiny", "series": {
        "track": "tiny", "names": ["level"], "full_scale": 1.0, "reduce": "max", "mask": None, "note": "test level"}}
    assert list(rd["catalog"])[:2] == ["container", "audio_splice"]
    d = _report(3.0, res.evidence_dicts(), ran=rd["ran"], skipped=rd["skipped"], tracks=rd["tracks"], catalog=rd["catalog"])
    lane = {l.kind: l for l in evidence_lanes(d)}["tiny_peak"]
    assert lane.label == "tiny peak" and lane.bars == [(1.0, 1.5, 0.7)] and lane.line_note == "test level"
    t, y = lane.line
    assert len(t) == 75 and y[0] == 0.0 and y[-1] == 1.0


def test_registry_checks_the_declaration_and_what_runs_produce(tmp_path):
    from avdetect.forensics import Analysis, register_analysis, unregister_analysis

    with pytest.raises(ConfigError, match="already belong to analysis 'sync'"):
        register_analysis(_tiny_analysis(kind="sync_span"))
    with pytest.raises(ConfigError, match="labels must name exactly its kinds"):
        register_analysis(Analysis("tiny", kinds=("a_kind",), labels={}, needs=(), run=lambda inputs: ([], {})))
    with pytest.raises(ConfigError, match="unknown input"):
        register_analysis(Analysis("tiny", kinds=("a_kind",), labels={"a_kind": "a"}, needs=("smell",), run=lambda inputs: ([], {})))
    with pytest.raises(ConfigError, match="already registered"):
        register_analysis(Analysis("sync", kinds=("a_kind",), labels={"a_kind": "a"}, needs=(), run=lambda inputs: ([], {})))
    assert "tiny" not in analysis_names()
    path = tmp_path / "a.wav"
    sf.write(path, _speechlike(2, np.random.default_rng(6)), SR)
    register_analysis(_tiny_analysis(emit="sync_span"))  # declares tiny_peak, emits another analysis's kind
    try:
        with pytest.raises(ValueError, match="not among its declared kinds"):
            analyze(load_media(path), kinds=["tiny"])
    finally:
        unregister_analysis("tiny")


def _speechlike(seconds: float, rng, f0=140.0) -> np.ndarray:
    """Harmonic bursts at syllable rate: energy in the speech band that comes and goes."""
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6)) + 0.05 * np.sin(2 * np.pi * 2.1 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR  # intonation: the pitch glides like a talker's
    voice = sum(np.sin(k * phase) / k * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * k * t)) for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 3.7 * t + rng.uniform(0, 6)), 0, None) ** 2 * (np.sin(2 * np.pi * 0.4 * t) > -0.6)
    return (0.1 * voice * env).astype(np.float32)


def _talk(seconds: float, seed: int) -> np.ndarray:
    """Formant speech of one synthetic talker (avdetect.synth), peak 0.1: speech to the VAD as
    well as to the energy gate (the harmonic bursts of :func:`_speechlike` are not speech to a VAD)."""
    from avdetect.synth.speech import plan_utterance, sample_voice, synthesize

    rng = np.random.default_rng(seed)
    voice = sample_voice(rng, f"talker{seed}")
    x, _ = synthesize(plan_utterance(rng, voice, seconds), voice, rng)
    return 0.2 * x


@pytest.fixture(params=["vad", "energy"])
def speech_gate(request, monkeypatch):
    """Run a test with the Silero VAD as the speech gate, and again with the energy gate."""
    from avdetect import vad

    if request.param == "vad" and not vad.vad_available():
        pytest.skip("silero-vad / onnxruntime not installed")
    if request.param == "energy":
        monkeypatch.setattr(vad, "vad_available", lambda: False)
    return request.param


def test_audio_only_file_skips_video_kinds_and_finds_inserted_span(tmp_path, speech_gate):
    """A span recorded elsewhere (other noise colour and bandwidth) inside otherwise uniform audio."""
    rng = np.random.default_rng(0)
    n = 20 * SR
    x = _talk(20, 10) + 0.003 * rng.standard_normal(n).astype(np.float32)
    s0, s1 = 8 * SR, 12 * SR
    other = _talk(4, 20)
    # another room/microphone: low-passed speech over a hiss 16 dB above the main recording's
    other = np.convolve(other, np.ones(6) / 6, mode="same")
    hiss = 0.02 * rng.standard_normal(s1 - s0).astype(np.float32)
    x[s0:s1] = other + hiss
    path = tmp_path / "spliced.wav"
    sf.write(path, x, SR)
    res = analyze(load_media(path))
    for k in ("sync", "visual", "blinks"):
        assert res.skipped[k] == "the file has no video stream"
    assert "audio" in res.ran and "container" in res.ran
    assert res.tracks["speech"].description.startswith(f"gate: {speech_gate}")
    spans = [(e.start_s, e.end_s) for e in res.of_kind("audio_splice") if e.start_s is not None]
    edges = [t for s, e in spans for t in (s, e)]
    assert any(abs(t - 8.0) <= 0.5 for t in edges) and any(abs(t - 12.0) <= 0.5 for t in edges), spans
    json.dumps(res.to_dict())


def test_uniform_audio_has_no_strong_splice(tmp_path, speech_gate):
    rng = np.random.default_rng(1)
    x = _talk(20, 31) + 0.003 * rng.standard_normal(20 * SR).astype(np.float32)
    path = tmp_path / "clean.wav"
    sf.write(path, x, SR)
    res = analyze(load_media(path), kinds=["audio"])
    assert all(e.strength < 0.5 for e in res.of_kind("audio_splice")), [e.to_dict() for e in res.of_kind("audio_splice")]


def test_faceless_video_without_audio(tmp_path):
    path = tmp_path / "bars.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=3", "-c:v", "libx264", "-preset", "ultrafast", str(path))
    res = analyze(load_media(path))
    assert res.skipped["audio"] == "the file has no audio stream"
    assert res.skipped["sync"] == "the file has no audio stream"
    assert res.skipped["blinks"] == "no face was found"
    assert res.ran == ["container"]
    assert any("software" in (e.value or {}) for e in res.of_kind("container"))


def test_sync_finds_rerendered_mouth_where_the_model_is_blind(tmp_path):
    """A synthetic clip whose mouth is re-rendered over [3, 6) s with the audio untouched (the
    shipped checkpoint finds none of these): the lip-sync track does, and the real twin (same seed)
    gets no item of strength >= 0.5."""
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    fake, real = tmp_path / "visual.mp4", tmp_path / "real.mp4"
    render_clip(fake, ClipSpec(seed=500, duration=10.0, size=256, crf=23,
                               manipulation=Manipulation(kind="visual", strength=0.9, segments=[(3.0, 6.0)])))
    render_clip(real, ClipSpec(seed=500, duration=10.0, size=256, crf=23, manipulation=Manipulation(kind="real")))
    res = analyze(load_media(fake))
    spans = [(e.start_s, e.end_s) for e in res.of_kind("sync_span") if e.strength >= 0.5]
    assert max([iou((3.0, 6.0), s) for s in spans], default=0.0) >= 0.5, [e.to_dict() for e in res.evidence]
    clean = analyze(load_media(real))
    assert not [e.to_dict() for e in clean.evidence if e.strength >= 0.5]


# ---------------------------------------------------------------------------------------
# real clips, looped to ~24 s and manipulated with ffmpeg
LOOP_S = 24.0


def _loop(src, dst, seconds=LOOP_S):
    """``src`` repeated to ``seconds`` with the concat filter, which keeps every copy's audio and
    video together (``-stream_loop`` lets AAC priming accumulate: the audio drifts per loop)."""
    n = int(np.ceil(seconds / load_media(src).duration))
    inputs = [a for _ in range(n) for a in ("-i", str(src))]
    streams = "".join(f"[{i}:v:0][{i}:a:0]" for i in range(n))
    fc = f"{streams}concat=n={n}:v=1:a=1[v][a0];[a0]aresample=16000,aformat=channel_layouts=mono[a]"
    run_ffmpeg(*inputs, "-filter_complex", fc, "-map", "[v]", "-map", "[a]", "-t", f"{seconds}", "-r", "25",
               "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-c:a", "aac", "-b:a", "128k", str(dst))


def _with_audio(video, dst, filter_complex, extra_inputs=()):
    args = ["-i", str(video)]
    for p in extra_inputs:
        args += ["-i", str(p)]
    run_ffmpeg(*args, "-filter_complex", filter_complex, "-map", "0:v", "-map", "[a]", "-c:v", "copy",
               "-c:a", "aac", "-b:a", "128k", "-t", f"{LOOP_S}", str(dst))


def make_case(looped, other, tmp_path, case: str):
    """Manipulated copy of ``looped``; returns (path, span or None, expected extra offset in s)."""
    dst = tmp_path / f"{case}.mp4"
    if case.startswith("shift"):  # audio from d seconds earlier inside [9, 12): sound late by d
        d = float(case[5:])
        fc = (f"[0:a]atrim=0:9,asetpts=N/SR/TB[a0];[0:a]atrim={9 - d}:{12 - d},asetpts=N/SR/TB[a1];"
              f"[0:a]atrim=12,asetpts=N/SR/TB[a2];[a0][a1][a2]concat=n=3:v=0:a=1[a]")
        _with_audio(looped, dst, fc)
        return dst, (9.0, 12.0), None
    if case == "replace":
        fc = ("[0:a]atrim=0:9,asetpts=N/SR/TB[a0];[1:a]atrim=1:4,asetpts=N/SR/TB,aresample=16000,"
              "aformat=channel_layouts=mono[a1];[0:a]atrim=12,asetpts=N/SR/TB[a2];[a0][a1][a2]concat=n=3:v=0:a=1[a]")
        _with_audio(looped, dst, fc, [other])
        return dst, (9.0, 12.0), None
    if case == "visual":  # frames of [9, 12) re-rendered: blurred and colour-shifted, audio untouched
        vf = "gblur=sigma=1.5:enable='between(t,9,12)',eq=saturation=1.25:gamma_r=1.08:enable='between(t,9,12)'"
        run_ffmpeg("-i", str(looped), "-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-c:a", "copy", str(dst))
        return dst, (9.0, 12.0), None
    if case.startswith("whole"):
        d = float(case[5:])
        if d > 0:  # audio late
            fc = f"[0:a]adelay={int(d * 1000)}:all=1,atrim=0:{LOOP_S}[a]"
        else:
            fc = f"[0:a]atrim={-d},asetpts=N/SR/TB,apad=whole_dur={LOOP_S}[a]"
        _with_audio(looped, dst, fc)
        return dst, None, d
    raise ValueError(case)


@pytest.fixture(scope="module")
def looped_clips(tmp_path_factory):
    clips = sample_clips()
    if not clips:
        pytest.skip("real sample clips not found")
    from avdetect.faces import track_faces

    out = {}
    base = tmp_path_factory.mktemp("forensics_loops")
    for src in clips:
        dst = base / f"{src.stem}_loop.mp4"
        _loop(src, dst)
        out[src.stem] = (dst, src)
    cache: dict = {}

    def get(stem):
        if stem not in cache:
            dst, src = out[stem]
            cache[stem] = (dst, src, track_faces(load_media(dst)))
        return cache[stem]

    get.stems = sorted(out)
    get.path = lambda stem: out[stem][0]
    return get


def _run_case(looped_clips, stem, case, tmp_path):
    looped, _src, track = looped_clips(stem)
    other = next(s for s in looped_clips.stems if s != stem)
    other_path = looped_clips.path(other) if case == "replace" else None
    path, span, shift = make_case(looped, other_path, tmp_path, case)
    res = analyze(load_media(path), face_track=track, kinds=["sync"])
    base = analyze(load_media(looped), face_track=track, kinds=["sync"])
    return res, base, span, shift


def _sync_span_iou(res, span) -> float:
    return max([iou(span, (e.start_s, e.end_s)) for e in res.of_kind("sync_span")], default=0.0)


def _offset(res) -> float:
    return res.of_kind("sync_offset")[0].value["offset_s"]


AOC = "sadtalker_WDA_AlexandriaOcasioCortez_000"


@pytest.mark.parametrize("case", ["shift0.5", "whole0.5"])
def test_sync_on_manipulated_real_clip(looped_clips, tmp_path, case):
    if AOC not in looped_clips.stems:
        pytest.skip("sample clip missing")
    res, base, span, shift = _run_case(looped_clips, AOC, case, tmp_path)
    if span is not None:
        assert _sync_span_iou(res, span) >= 0.5, [e.to_dict() for e in res.of_kind("sync_span")]
    else:
        assert abs(_offset(res) - _offset(base) - shift) <= 2 / 25 + 1e-9, (_offset(res), _offset(base))
    assert "sync" in res.tracks and len(res.tracks["sync"].times_s) > 40


CASES = ["shift0.2", "shift0.5", "shift1.0", "replace", "whole0.5", "whole-0.5"]


@pytest.mark.slow
def test_sync_matrix_on_all_real_clips(looped_clips, tmp_path):
    """Every clip x every manipulation: most spans found with IoU >= 0.5, offsets within 2 frames."""
    hits, total, lines = 0, 0, []
    for stem in looped_clips.stems:
        for case in CASES:
            sub = tmp_path / f"{stem}_{case}"
            sub.mkdir()
            res, base, span, shift = _run_case(looped_clips, stem, case, sub)
            total += 1
            if span is not None:
                ok = _sync_span_iou(res, span) >= 0.5
                lines.append(f"{stem} {case} iou={_sync_span_iou(res, span):.2f}")
            else:
                err = _offset(res) - _offset(base) - shift
                ok = abs(err) <= 2 / 25 + 1e-9
                lines.append(f"{stem} {case} offset error={err * 25:+.1f} frames")
            hits += ok
    print("\n".join(lines))
    assert hits >= 0.7 * total, "\n".join(lines)


def _untouched_params():
    return sample_clips() or [None]


@pytest.mark.parametrize("clip", _untouched_params(), ids=lambda c: c.stem if c else "none")
def test_untouched_real_clips_not_flagged_strongly(clip):
    if clip is None:
        pytest.skip("real sample clips not found")
    res = analyze(load_media(clip))
    strong = [e.to_dict() for e in res.evidence if e.strength >= 0.5]
    assert not strong, strong
    assert set(res.ran) == set(analysis_names())


def test_untouched_loops_have_no_strong_sync_span(looped_clips):
    """24 s loops of the untouched clips: each 2 s stretch where the clip's own mouth model fits
    poorly recurs three times; none may become a strong sync_span (it did before span support
    required more than two or three windows)."""
    for stem in looped_clips.stems:
        looped, _src, track = looped_clips(stem)
        res = analyze(load_media(looped), face_track=track, kinds=["sync"])
        strong = [e.to_dict() for e in res.of_kind("sync_span") if e.strength >= 0.5]
        assert not strong, (stem, strong)


def test_visual_change_finds_rerendered_span(looped_clips, tmp_path):
    """Frames of [9, 12) blurred and colour-shifted: a visual_change span close to it."""
    if AOC not in looped_clips.stems:
        pytest.skip("sample clip missing")
    path, span, _ = make_case(looped_clips.path(AOC), None, tmp_path, "visual")
    res = analyze(load_media(path), kinds=["visual"])
    spans = [(e.start_s, e.end_s) for e in res.of_kind("visual_change") if e.strength >= 0.5]
    assert max([iou(span, s) for s in spans], default=0.0) >= 0.5, [e.to_dict() for e in res.of_kind("visual_change")]
    assert "visual_change" in res.tracks


def test_cli_evidence_table_json_and_errors(tmp_path, capsys):
    from avdetect.cli import main

    rng = np.random.default_rng(2)
    path = tmp_path / "talk.wav"
    sf.write(path, _talk(6, 2) + 0.003 * rng.standard_normal(6 * SR).astype(np.float32), SR)
    assert main(["evidence", str(path), "--json", "--no-tracks"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"]["sync"] == "the file has no video stream" and "tracks" not in out
    assert all({"kind", "start_s", "end_s", "value", "explanation", "strength", "reliability"} <= set(e) for e in out["evidence"])
    assert main(["evidence", str(path)]) == 0
    text = capsys.readouterr().out
    assert "skipped sync: the file has no video stream" in text and "audio_bandwidth" in text
    assert main(["evidence", str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mp4" in err[0]
    assert main(["evidence", str(path), "--kinds", "nope"]) == 2


def test_window_sync_curves_are_the_per_lag_correlations():
    """The per-window sync curve (all lags at once, the clip's ends lag by lag) is exactly the
    correlation of the prediction with the envelope at each lag, frames outside the clip left out."""
    from avdetect.forensics.sync import MAX_LAG, EnvelopeSyncScorer, _corr

    rng = np.random.default_rng(0)
    scorer = EnvelopeSyncScorer()
    scorer.y = rng.normal(size=400)
    for offset, t in [(0, np.arange(100, 200)), (3, np.arange(0, 90)), (-5, np.arange(330, 400)),
                      (0, np.array([1, 2, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377]))]:
        scorer.offset = offset
        p = rng.normal(size=len(t))
        ref = []
        for rel in range(-MAX_LAG, MAX_LAG + 1):
            tt = t + offset + rel
            ins = (tt >= 0) & (tt < len(scorer.y))
            ref.append(_corr(p[ins], scorer.y[tt[ins]]) if ins.sum() >= 10 else 0.0)
        assert np.array_equal(scorer._window_corr(p, t), np.array(ref))


@pytest.mark.parametrize("n", [3000, 120])
def test_principal_axes_are_the_leading_right_singular_vectors(n):
    """The sync evidence's lips axes (eigenvectors of the smaller Gram matrix) are the SVD's
    leading right singular vectors, up to sign, from tall (n > d) and wide (n < d) rows; each
    sign is fixed by the largest loading."""
    from avdetect.forensics.sync import principal_axes

    rng = np.random.default_rng(1)
    d, k = 528, 6
    x = (rng.normal(size=(n, 12)) * np.linspace(6, 1, 12)) @ rng.normal(size=(12, d)) + 0.1 * rng.normal(size=(n, d))
    x = (x - x.mean(0)).astype(np.float32)
    axes = principal_axes(x, k)
    _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    assert axes.shape == (k, d) and axes.dtype == np.float32
    assert np.allclose(np.abs(np.sum(axes * vt[:k], axis=1)), 1.0, atol=1e-5)  # the same axes
    assert np.allclose(np.linalg.norm(axes, axis=1), 1.0, atol=1e-5)
    assert (axes[np.arange(k), np.abs(axes).argmax(1)] > 0).all()
    assert np.array_equal(principal_axes(-x, k), axes)  # the sign does not depend on the data's


class _TwoPeakScorer:
    """A sync scorer whose whole-clip curve has a peak at -0.48 s and another at +0.04 s (natural),
    ``gap`` lower; every 2-s window agrees with the clip's offset."""

    def __init__(self, gap):
        self.gap = gap

    def fit(self, mouth, valid, envelope, speech, shape=None):
        pass

    def global_curve(self):
        lags = np.arange(-25, 26)
        return 0.1 + 0.2 * np.exp(-0.5 * ((lags + 12) / 1.5) ** 2) + (0.2 - self.gap) * np.exp(-0.5 * ((lags - 1) / 1.5) ** 2)

    def window_curve(self, start, stop):
        return 0.1 + 0.3 * np.exp(-0.5 * (np.arange(-25, 26) / 1.5) ** 2), 1.0


@pytest.mark.parametrize("gap,strong", [(0.02, False), (0.15, True)])
def test_a_whole_clip_offset_counts_by_how_far_it_beats_the_natural_range(gap, strong):
    """The sync_offset item of an offset outside the natural range is weighed by how far its peak
    stands above the best lag inside the range: real speech's rhythm gives second peaks nearly as
    high, and the argmax between two such peaks flips with small changes to the face boxes."""
    from avdetect.forensics.sync import sync_evidence, sync_track

    T = 25 * 12
    valid, speech = np.ones(T, bool), np.ones(T, bool)
    track, frame_score = sync_track(np.zeros((T, 22, 24), np.uint8), valid, np.zeros(T), speech, scorer=_TwoPeakScorer(gap))
    assert track.clip_offset_s == pytest.approx(-0.48) and track.clip_margin == pytest.approx(gap, abs=0.005)
    item = next(e for e in sync_evidence(track, frame_score, speech) if e.kind == "sync_offset")
    assert item.value["margin_over_natural"] == pytest.approx(gap, abs=0.005)
    assert (item.strength >= 0.7) is strong and (item.strength < 0.2) is not strong, item.strength
    assert ("fits almost as well" in item.explanation) is not strong
