"""Dataset manifests: one JSON line per clip, the same schema for every benchmark.

A manifest is what the preprocessing cache, the training datasets and the evaluation recipe
read; it hides each benchmark's own metadata format. The schema is documented in
``data_manifests/README.md``; :class:`ManifestEntry` is its code form. All times are seconds.

Builders (each reads the benchmark's own metadata through :mod:`avdetect.data.formats`, so
there is one parser per format):

* :func:`build_lavdf` -- LAV-DF ``ROOT/metadata.json``;
* :func:`build_av1m` -- AV-Deepfake1M ``ROOT/{train,val,test}_metadata.json``;
* :func:`build_fakeavceleb` -- FakeAVCeleb ``ROOT/meta_data.csv`` (or the folder tree) with a
  subject-disjoint split drawn with a fixed seed (:func:`fakeavceleb_split`);
* :func:`build_synthetic` -- a folder written by ``avdetect synth`` (its LAV-DF
  ``metadata.json`` for splits and durations, its AV-Deepfake1M files for per-modality
  segments).
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avdetect.data.formats import read_metadata
from avdetect.errors import DataFormatError
from avdetect.vocab import CATEGORIES, category_of, modalities_of

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FAKEAVCELEB_SPLIT = (0.7, 0.15, 0.15)  # train / val / test share of subjects
FAKEAVCELEB_SEED = 2024


@dataclass
class ManifestEntry:
    """One clip. ``file`` is the benchmark's key (used in prediction files); ``path`` the
    absolute path of the media file."""

    file: str
    path: str
    dataset: str
    split: str
    label: int  # 1 = fake (any segment in either modality), 0 = real
    category: str  # one of avdetect.vocab.CATEGORIES (FakeAVCeleb folder; derived for the others)
    modify_video: bool
    modify_audio: bool
    fake_segments: list[list[float]] = field(default_factory=list)  # [[start_s, end_s], ...] either modality
    visual_segments: list[list[float]] = field(default_factory=list)
    audio_segments: list[list[float]] = field(default_factory=list)
    duration: float | None = None  # seconds (None: unknown until preprocessing)
    subject: str | None = None  # identity used for subject-disjoint splits (FakeAVCeleb)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "ManifestEntry":
        names = set(cls.__dataclass_fields__)
        missing = [k for k in ("file", "path", "dataset", "split", "label", "category", "modify_video", "modify_audio")
                   if k not in d]
        if missing:
            raise DataFormatError(f"{where}missing field(s) {missing}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise DataFormatError(f"{where}unknown field(s) {unknown}")
        e = cls(**d)
        if e.label not in (0, 1):
            raise DataFormatError(f"{where}label must be 0 or 1, got {e.label!r}")
        if e.category not in CATEGORIES:
            raise DataFormatError(f"{where}unknown category {e.category!r}")
        for name in ("fake_segments", "visual_segments", "audio_segments"):
            segs = getattr(e, name)
            if not isinstance(segs, list) or any(not isinstance(s, list) or len(s) != 2 or s[0] > s[1] for s in segs):
                raise DataFormatError(f"{where}{name} must be a list of [start_s, end_s] with start <= end")
        return e


def write_manifest(entries: list[ManifestEntry], path: str | Path) -> Path:
    """Write entries as JSON lines (atomically: a temporary file renamed into place)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for e in entries:
            fh.write(e.to_json() + "\n")
    os.replace(tmp, out)
    return out


def read_manifest(path: str | Path, split: str | None = None) -> list[ManifestEntry]:
    """Parse a manifest (optionally only one split); raises DataFormatError naming the line."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError("manifest not found", p)
    entries = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(f"line {n}: not valid JSON ({err})", p) from None
            if not isinstance(d, dict):
                raise DataFormatError(f"line {n}: expected a JSON object", p)
            try:
                e = ManifestEntry.from_dict(d, where=f"line {n}: ")
            except DataFormatError as err:
                raise DataFormatError(err.message, p) from None
            except TypeError as err:
                raise DataFormatError(f"line {n}: {err}", p) from None
            if split is None or e.split == split:
                entries.append(e)
    if not entries:
        raise DataFormatError("no entries" + (f" of split {split!r}" if split else ""), p)
    return entries


# ---------------------------------------------------------------------------------------
def _pairs(a: np.ndarray) -> list[list[float]]:
    return [[round(float(s), 6), round(float(e), 6)] for s, e in np.asarray(a).reshape(-1, 2)]


def _entry(file: str, path: Path, dataset: str, split: str, fake, visual, audio, duration, modify_video=None,
           modify_audio=None, category=None, subject=None) -> ManifestEntry:
    mv = bool(len(visual)) if modify_video is None else bool(modify_video)
    ma = bool(len(audio)) if modify_audio is None else bool(modify_audio)
    fake = _pairs(fake)
    return ManifestEntry(
        file=file, path=str(path), dataset=dataset, split=str(split), label=int(bool(fake) or mv or ma),
        category=category or category_of(mv, ma), modify_video=mv, modify_audio=ma, fake_segments=fake,
        visual_segments=_pairs(visual), audio_segments=_pairs(audio),
        duration=None if duration is None else round(float(duration), 6), subject=subject,
    )


def _check_files(entries: list[ManifestEntry], root: Path, check: bool) -> list[ManifestEntry]:
    if not check:
        return entries
    missing = [e for e in entries if not os.path.isfile(e.path)]
    if missing:
        logger.warning("%s: %d of %d listed media files do not exist (e.g. %s); they are left out",
                       root, len(missing), len(entries), missing[0].path)
        entries = [e for e in entries if os.path.isfile(e.path)]
    if not entries:
        raise DataFormatError("none of the listed media files exists under this root", root)
    return entries


def build_lavdf(root: str | Path, check_files: bool = True) -> list[ManifestEntry]:
    """LAV-DF: ``root/metadata.json``; media at ``root/<file>``.

    LAV-DF gives one list of fake periods plus which modalities were changed: the periods are
    the visual segments when ``modify_video`` and the audio segments when ``modify_audio``.
    """
    root = Path(root)
    meta = read_metadata(root / "metadata.json")
    if meta.format != "lavdf":
        raise DataFormatError(f"expected LAV-DF metadata (fake_periods), found {meta.format}", root / "metadata.json")
    out = []
    for v in meta.videos:
        segs = v.segments
        empty = np.zeros((0, 2))
        out.append(_entry(v.file, root / v.file, "lavdf", v.split or "unknown", segs,
                          segs if v.modify_video else empty, segs if v.modify_audio else empty, v.duration,
                          modify_video=v.modify_video, modify_audio=v.modify_audio))
    return _check_files(out, root, check_files)


AV1M_SPLITS = ("train", "val", "test")


def _av1m_path(root: Path, split: str, file: str) -> Path:
    """AV-Deepfake1M keeps media under ``root/<split>/<file>``; synthetic copies use ``root/<file>``."""
    nested = root / split / file
    return nested if nested.is_file() or not (root / file).is_file() else root / file


def _empty_json_list(path: Path) -> bool:
    """True for a file holding just ``[]`` (cheap: only small files are parsed)."""
    if path.stat().st_size > 64:
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")) == []
    except (ValueError, UnicodeDecodeError):
        return False  # read_metadata reports the format error with its file name


def build_av1m(root: str | Path, check_files: bool = True, dataset: str = "av1m") -> list[ManifestEntry]:
    """AV-Deepfake1M: ``root/{train,val,test}_metadata.json`` (those present; test has no labels
    in the public release and is skipped when absent)."""
    root = Path(root)
    files = [(s, root / f"{s}_metadata.json") for s in AV1M_SPLITS if (root / f"{s}_metadata.json").is_file()]
    if not files:
        raise DataFormatError("no {train,val,test}_metadata.json found", root)
    out = []
    for split, f in files:
        if _empty_json_list(f):  # a split without clips (e.g. a test-only synthetic set)
            logger.info("%s lists no clips; skipped", f)
            continue
        meta = read_metadata(f)
        if meta.format != "av1m":
            raise DataFormatError(f"expected AV-Deepfake1M metadata (fake_segments), found {meta.format}", f)
        for v in meta.videos:
            if "visual" not in v.extra_segments or "audio" not in v.extra_segments:
                raise DataFormatError(f"{v.file!r}: visual_fake_segments / audio_fake_segments missing", f)
            out.append(_entry(v.file, _av1m_path(root, split, v.file), dataset, v.split or split, v.segments,
                              v.extra_segments["visual"], v.extra_segments["audio"], v.duration,
                              modify_video=v.modify_video or len(v.extra_segments["visual"]) > 0,
                              modify_audio=v.modify_audio or len(v.extra_segments["audio"]) > 0))
    return _check_files(out, root, check_files)


def build_synthetic(root: str | Path, check_files: bool = True) -> list[ManifestEntry]:
    """An ``avdetect synth`` folder: splits (train/dev/test) and durations from its LAV-DF
    ``metadata.json``, per-modality segments from its AV-Deepfake1M files."""
    root = Path(root)
    lavdf = {v.file: v for v in read_metadata(root / "metadata.json").videos}
    out = []
    for e in build_av1m(root, check_files=False, dataset="synthetic"):
        v = lavdf.get(e.file)
        if v is None:
            raise DataFormatError(f"{e.file!r} is in the AV-Deepfake1M files but not in metadata.json", root)
        e.split = v.split or e.split
        e.duration = v.duration if v.duration is not None else e.duration
        e.path = str(root / e.file)
        out.append(e)
    if len(out) != len(lavdf):
        raise DataFormatError(f"metadata.json lists {len(lavdf)} clips, the split files {len(out)}", root)
    order = {f: i for i, f in enumerate(lavdf)}
    out.sort(key=lambda e: order[e.file])
    return _check_files(out, root, check_files)


# ---------------------------------------------------------------------------------------
def fakeavceleb_split(subjects: list[str], seed: int = FAKEAVCELEB_SEED,
                      fractions: tuple[float, float, float] = FAKEAVCELEB_SPLIT) -> dict[str, str]:
    """Subject-disjoint split: the sorted unique subject ids are shuffled with ``seed`` and cut
    into train / val / test by ``fractions``. Deterministic for a given set of subjects."""
    ids = sorted(set(subjects))
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(round(fractions[0] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    out = {}
    for rank, i in enumerate(perm):
        out[ids[i]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def _probe_duration(path: str) -> float | None:
    from avdetect.errors import MediaError
    from avdetect.media import inspect_media

    try:
        return inspect_media(path).duration
    except MediaError as err:
        logger.warning("cannot read the duration of %s: %s", path, err)
        return None


def build_fakeavceleb(root: str | Path, check_files: bool = True, probe: bool = True, seed: int = FAKEAVCELEB_SEED,
                      workers: int = 8) -> list[ManifestEntry]:
    """FakeAVCeleb: clips listed by ``root/meta_data.csv`` (or, without it, found in the
    ``category/race/gender/id/file.mp4`` tree). Fakes are whole-clip, so the segments are
    ``[[0, duration]]`` for each manipulated modality; ``probe`` reads each file's duration
    (one ffmpeg call per file, ``workers`` in parallel). The split is subject-disjoint over the
    ``id`` folder (:func:`fakeavceleb_split`)."""
    root = Path(root)
    csv_path = root / "meta_data.csv"
    if csv_path.is_file():
        rows = [(v.file, v.category) for v in read_metadata(csv_path).videos]
    else:
        rows = []
        for cat in CATEGORIES:
            for f in sorted((root / cat).rglob("*.mp4")):
                rows.append((f.relative_to(root).as_posix(), cat))
        if not rows:
            raise DataFormatError("neither meta_data.csv nor category folders (RealVideo-RealAudio, ...) found", root)
    items = []
    for file, cat in rows:
        parts = file.split("/")
        if len(parts) != 5:
            raise DataFormatError(f"{file!r}: expected category/race/gender/id/file.mp4", csv_path if csv_path.is_file() else root)
        items.append((file, cat, parts[3]))
    split_of = fakeavceleb_split([s for _, _, s in items], seed=seed)
    paths = [str(root / f) for f, _, _ in items]
    exists = [os.path.isfile(p) for p in paths]
    durations: list[float | None] = [None] * len(items)
    if probe:
        todo = [i for i, ok in enumerate(exists) if ok]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            for i, d in zip(todo, ex.map(_probe_duration, [paths[i] for i in todo])):
                durations[i] = d
    out = []
    for (file, cat, subject), path, dur in zip(items, paths, durations):
        mv, ma = modalities_of(cat)
        whole = np.array([[0.0, dur]]) if dur is not None else np.zeros((0, 2))
        empty = np.zeros((0, 2))
        out.append(_entry(file, Path(path), "fakeavceleb", split_of[subject], whole if (mv or ma) else empty,
                          whole if mv else empty, whole if ma else empty, dur, modify_video=mv, modify_audio=ma,
                          category=cat, subject=subject))
    return _check_files(out, root, check_files)


def build_forged(root: str | Path, check_files: bool = True) -> list[ManifestEntry]:
    """An ``avdetect forge`` folder (the same metadata files as ``avdetect synth``), with each
    clip's person (from ``forge_info.json``) as its subject."""
    root = Path(root)
    info_path = root / "forge_info.json"
    if not info_path.is_file():
        raise DataFormatError("no forge_info.json: not an `avdetect forge` folder", root)
    person = {r["file"]: r["person"] for r in json.loads(info_path.read_text(encoding="utf-8"))["files"]}
    out = build_synthetic(root, check_files=check_files)
    for e in out:
        e.dataset, e.subject = "forged", person.get(e.file)
    return out


def build_realfaces(root: str | Path, check_files: bool = True, split_file: str | Path | None = None) -> list[ManifestEntry]:
    """Untouched real clips named by a person split file (default
    ``data_manifests/realfaces_split.json`` of this checkout) under ``root`` (``../shared``):
    label 0, the person as subject, the split from the file."""
    from avdetect.forge.corpus import split_sources

    if split_file is None:
        split_file = Path(__file__).resolve().parents[2] / "data_manifests" / "realfaces_split.json"
    out = []
    for s in split_sources(split_file, root):
        out.append(_entry(Path(s.path).name, Path(s.path), "realfaces", s.split, [], [], [], None, subject=s.person))
    return _check_files(out, Path(root), check_files)


BUILDERS = {"lavdf": build_lavdf, "av1m": build_av1m, "fakeavceleb": build_fakeavceleb, "synthetic": build_synthetic,
            "forged": build_forged, "realfaces": build_realfaces}


def summarize(entries: list[ManifestEntry]) -> dict:
    """Counts per split and label, for the command line."""
    out: dict = {"n": len(entries), "splits": {}}
    for e in entries:
        s = out["splits"].setdefault(e.split, {"real": 0, "fake": 0})
        s["fake" if e.label else "real"] += 1
    return out
