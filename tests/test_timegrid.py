"""avdetect.timegrid is the only seconds <-> frames <-> samples converter: its rules, and a guard
that fails on grid arithmetic written anywhere else."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from avdetect import timegrid as tg

ROOT = Path(__file__).resolve().parents[1]

#: Arithmetic with the grid's constants (or their literal values next to a multiplication or
#: division) is a conversion, and conversions belong in timegrid.
GRID_ARITHMETIC = re.compile(
    r"(?:[*/]\s*(?:FPS|SAMPLE_RATE)\b)"  # x * FPS, x / FPS, x // FPS, x / SAMPLE_RATE
    r"|(?:\b(?:FPS|SAMPLE_RATE)\s*(?:\*|/|//)(?!\s*100\b))"  # FPS * x, FPS // 2
    r"|(?:[*/]\s*(?:25(?:\.0)?|16000|16_000)\b(?!\.))"  # * 25, / 25.0, / 16000
    r"|(?:(?<![\d.])(?:25(?:\.0)?|16000|16_000)\s*(?:\*|/)\s*[a-z_(])"  # 25 * x (not 0.25 * x)
)
#: Places allowed to use the constants arithmetically, each for a reason that is not a time
#: conversion (the STFT frequency axis needs the sample spacing). A single line says why with a
#: trailing ``# not time: <reason>`` comment (e.g. Hz -> cycles per sample).
ALLOWED = {
    "avdetect/timegrid.py": "the converter itself",
}
ALLOWED_LINES = (
    "rfftfreq(",  # frequency axis of an STFT: sample spacing, not a time conversion
    "SAMPLE_RATE / HOP",  # STFT frames per second of the synthetic speech vocoder
    "SAMPLE_RATE // HOP",
    "* SAMPLE_RATE / HOP",
    "SAMPLE_RATE / 2",  # the Nyquist frequency
    "SAMPLE_RATE // 2",
)


def _code_lines(path: Path):
    in_doc = False
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_doc:
            if quotes % 2:
                in_doc = False
            continue
        if stripped.startswith(('"""', "'''")):
            in_doc = quotes % 2 == 1
            continue
        code, _, comment = line.partition("#")
        if code.strip() and not comment.strip().startswith("not time:"):
            yield no, code


def grid_arithmetic(paths) -> list[str]:
    hits = []
    for p in paths:
        rel = p.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        for no, code in _code_lines(p):
            if GRID_ARITHMETIC.search(code) and not any(ok in code for ok in ALLOWED_LINES):
                hits.append(f"{rel}:{no}: {code.strip()}")
    return hits


def test_no_grid_arithmetic_outside_timegrid():
    files = [p for d in ("avdetect", "recipes", "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]
    hits = grid_arithmetic(files)
    assert not hits, "convert with avdetect.timegrid, not by hand:\n" + "\n".join(hits)


def test_the_guard_catches_what_it_names(tmp_path):
    """Each way of writing a conversion by hand is caught; the converter's users are not."""
    bad = ["n = int(round(x * FPS))", "t = i / FPS", "k = FPS * seconds", "s = a / SAMPLE_RATE",
           "d = frames / 25.0", "f = int(s * 25)", "m = 25 * seconds", "n = s * 16000", "w = FPS // 2"]
    good = ["n = seconds_to_frames_round(x)", "p = f0 / SAMPLE_RATE  # not time: cycles per sample", "t = frames_to_seconds(i)", "vf = f'fps={FPS}'",
            "'-ar', str(SAMPLE_RATE)", "freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)", "x = 2.5 * y",
            "m = max(a, 0.25 * b)", "y = x * 25.5"]
    d = ROOT / "avdetect"
    probe = d / "_guard_probe_tmp.py"
    try:
        probe.write_text("\n".join(bad + good) + "\n", encoding="utf-8")
        hits = grid_arithmetic([probe])
    finally:
        probe.unlink()
    assert [h.split(": ", 1)[1] for h in hits] == bad


def test_rounding_rules():
    # an instant -> the frame holding it (floor); an edge or a duration -> the nearest boundary
    assert tg.seconds_to_frame(0.0399999) == 0 and tg.seconds_to_frame(0.04) == 1
    assert tg.seconds_to_frames_round(0.059) == 1 and tg.seconds_to_frames_round(0.061) == 2
    assert tg.n_frames_for_duration(2.01) == 50 and tg.n_frames_for_duration(-1) == 0
    np.testing.assert_array_equal(tg.seconds_to_frames_round(np.array([0.0, 0.02, 0.061, 1.0])), [0, 0, 2, 25])
    assert tg.frames_to_seconds(25) == 1.0 and tg.frame_to_sample(3) == 1920
    assert tg.samples_to_frames(1919) == 2 and tg.samples_to_seconds(8000) == 0.5
    assert tg.n_samples_for_duration(0.01) == 160
