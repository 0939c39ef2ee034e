"""Forged copies of real video files, with LAV-DF and AV-Deepfake1M metadata.

``forge_folder(sources, out_dir, seed=0)`` writes, for every source clip::

    real/<stem>.mp4              the untouched clip, re-encoded exactly like the forgeries (so
                                 re-encoding alone does not tell real from fake)
    <family>/<stem>.mp4          one forged copy per family, a span of 0.5-2.5 s manipulated
    metadata.json                LAV-DF form (every file)
    train|val|test_metadata.json AV-Deepfake1M form, one per split ('dev' is written as 'val')
    forge_info.json              per file: family, span, every parameter, donor, source, seed

Everything is drawn from ``(seed, source name, family)``, so a file comes out the same in any
order and in parallel processes. Frames are decoded at the working size (longer side at most
``max_side``), faces tracked with the default backend, and the forgery placed on the tracked
face box; frames without a face are left untouched.
"""
from __future__ import annotations

import json
import logging
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdetect.errors import ConfigError, DataFormatError
from avdetect.forge.families import FAMILIES, check_families, forge_clip, pick_span, usable_families
from avdetect.timegrid import frame_to_sample, frames_to_seconds
from avdetect.vocab import DECODE_MAX_SIDE, modify_type_of

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
AV1M_SPLIT_NAME = {"train": "train", "dev": "val", "test": "test"}
DEFAULT_CRF = (18, 28)  # x264 quality drawn per source (the real copy and its forgeries share it)


@dataclass(frozen=True)
class Source:
    """A real clip to forge: its path, the person in it (donor speech comes from other people)
    and the split it belongs to."""

    path: str
    person: str
    split: str = "test"

    @property
    def stem(self) -> str:
        return Path(self.path).stem


def _seed(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), *(zlib.crc32(p.encode("utf-8")) for p in parts)])


def _load(path: str, max_side: int):
    from avdetect.faces import FaceTracker
    from avdetect.media import load_media

    media = load_media(path, max_side=max_side)
    if not media.has_video:
        raise DataFormatError("forging needs a video stream", path)
    frames = media.read_frames()
    track = FaceTracker(crops=False).track(media)
    n = min(len(frames), len(track.valid))
    wave = media.audio[: frame_to_sample(n)] if media.has_audio else None
    if wave is not None and len(wave) < frame_to_sample(n):
        wave = np.pad(wave, (0, frame_to_sample(n) - len(wave)))
    return frames[:n], track.boxes[:n], track.valid[:n], wave, track.coverage


def _truth(file: str, src: Source, record, n: int, crf: int) -> dict:
    return {"file": file, "source": src.path, "person": src.person, "split": src.split, "crf": crf,
            "video_frames": n, "audio_frames": frame_to_sample(n),
            **(record.to_dict() if record is not None else {"family": "real", "modify_video": False,
                                                            "modify_audio": False})}


def _forge_one(job: tuple) -> list[dict]:
    """All files of one source (its frames are decoded and its face tracked once)."""
    src, out_dir, seed, families, donors, max_side, write_real = job
    out = Path(out_dir)
    frames, boxes, valid, wave, coverage = _load(src.path, max_side)
    n = len(frames)
    if coverage < 0.5:
        log.warning("%s: a face in only %.0f%% of frames; visual forgeries touch those frames only", src.path,
                    100 * coverage)
    crf = int(_seed(seed, src.stem, "crf").integers(DEFAULT_CRF[0], DEFAULT_CRF[1] + 1))
    from avdetect.media import load_media, write_video

    rows = []
    if write_real:
        file = f"real/{src.stem}.mp4"
        write_video(out / file, frames, wave, crf=crf, error=DataFormatError)
        rows.append(_truth(file, src, None, n, crf))
    usable = usable_families(families, have_donors=bool(donors))
    for fam in families:
        if fam not in usable:
            log.warning("%s: family %s skipped (%s)", src.path, fam,
                        "espeak-ng is not installed" if fam == "voice_tts" else "no donor speech from another person")
            continue
        if wave is None and fam != "face_blend" and fam != "mouth_rerender":
            log.warning("%s: family %s skipped (no audio)", src.path, fam)
            continue
        rng = _seed(seed, src.stem, fam)
        span = pick_span(n, rng)
        donor_wave = donor_name = None
        if fam in ("voice_swap", "both") and donors:
            donor_name = str(donors[int(rng.integers(len(donors)))])
            donor_wave = load_media(donor_name).audio
        f2, w2, rec = forge_clip(fam, frames, boxes, valid, wave, span, rng, donor_wave=donor_wave,
                                 donor_name=donor_name)
        file = f"{fam}/{src.stem}.mp4"
        write_video(out / file, f2, w2, crf=crf, error=DataFormatError)
        rows.append(_truth(file, src, rec, n, crf))
    return rows


def lavdf_row(t: dict) -> dict:
    segs = [[t["start_s"], t["end_s"]]] if t["modify_video"] or t["modify_audio"] else []
    return {"file": t["file"], "split": t["split"], "n_fakes": len(segs), "fake_periods": segs,
            "duration": round(frames_to_seconds(t["video_frames"]), 4), "original": Path(t["source"]).name,
            "modify_video": t["modify_video"], "modify_audio": t["modify_audio"], "video_frames": t["video_frames"],
            "audio_channels": 1, "audio_frames": t["audio_frames"]}


def av1m_row(t: dict) -> dict:
    v, a = t["modify_video"], t["modify_audio"]
    seg = [[t["start_s"], t["end_s"]]] if v or a else []
    kind = modify_type_of(v, a)
    return {"file": t["file"], "original": Path(t["source"]).name, "split": AV1M_SPLIT_NAME[t["split"]],
            "modify_type": kind, "audio_model": f"forge-{t['family']}" if a else "",
            "fake_segments": seg, "audio_fake_segments": seg if a else [], "visual_fake_segments": seg if v else [],
            "video_frames": t["video_frames"], "audio_frames": t["audio_frames"]}


def forge_folder(sources: list[Source], out_dir: str | Path, *, seed: int = 0, families=FAMILIES,
                 max_side: int = DECODE_MAX_SIDE, workers: int = 1, write_real: bool = True, quiet: bool = True) -> dict:
    """Forge every source with every family (see the module docstring); returns a summary.

    A source that cannot be read is logged and listed under ``failed``; the others are written.
    """
    families = check_families(families)
    for s in sources:
        if s.split not in SPLITS:
            raise ConfigError(f"{s.path}: split must be one of {', '.join(SPLITS)}, got {s.split!r}")
    stems = [s.stem for s in sources]
    if len(set(stems)) != len(stems):
        raise ConfigError("two sources share a file name; output names would collide")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for s in sources:
        donors = sorted(o.path for o in sources if o.person != s.person and o.split == s.split)
        jobs.append((s, str(out), seed, families, donors, max_side, write_real))
    rows: list[dict] = []
    failed: dict[str, str] = {}
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="forge", unit="clip", disable=quiet)

    def take(job, result=None, err=None):
        if err is not None:
            log.warning("forge: %s failed: %s", job[0].path, err)
            failed[job[0].path] = f"{type(err).__name__}: {err}"
        else:
            rows.extend(result)
        bar.update()

    if workers <= 1:
        for job in jobs:
            try:
                take(job, _forge_one(job))
            except Exception as err:  # noqa: BLE001 - reported per source in the summary, the rest goes on
                take(job, err=err)
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futures = [(job, ex.submit(_forge_one, job)) for job in jobs]
            for job, fut in futures:
                try:
                    take(job, fut.result())
                except Exception as err:  # noqa: BLE001 - as above
                    take(job, err=err)
    bar.close()
    rows.sort(key=lambda r: r["file"])
    _write_json(out / "metadata.json", [lavdf_row(r) for r in rows])
    for split in SPLITS:
        _write_json(out / f"{AV1M_SPLIT_NAME[split]}_metadata.json", [av1m_row(r) for r in rows if r["split"] == split])
    _write_json(out / "forge_info.json", {"generator": "avdetect.forge", "seed": seed, "families": list(families),
                                          "max_side": max_side, "files": rows, "failed": failed})
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["family"]] = counts.get(r["family"], 0) + 1
    return {"out_dir": str(out), "files": len(rows), "families": counts, "failed": failed}


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
