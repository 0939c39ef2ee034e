"""Dataset manifests: one JSON line per clip, the same schema for every benchmark.

A manifest is what the preprocessing cache, the training datasets and the evaluation recipe
read; it hides each benchmark's own metadata format. The schema is documented in
``data_manifests/README.md``; :class:`ManifestEntry` is its code form. All times are seconds.

Builders (each reads the benchmark's own metadata through :mod:`avdetect.data.formats`, so
there is one parser per format):

* :func:`build_lavdf` -- LAV-DF ``ROOT/metadata.json`` (or ``metadata.min.json``, what LAV-DF's
  own loader reads);
* :func:`build_av1m` -- AV-Deepfake1M ``ROOT/{train,val}_metadata.json`` and the unlabelled
  ``ROOT/test_files.txt`` (media under ``ROOT/<split>/``), as the ``avdeepfake1m`` SDK's
  ``AVDeepfake1mDataModule`` reads them;
* :func:`build_fakeavceleb` -- FakeAVCeleb ``ROOT/meta_data.csv`` (or the folder tree) with a
  subject-disjoint split drawn with a fixed seed (:func:`fakeavceleb_split`);
* :func:`build_synthetic` -- a folder written by ``avdetect synth`` (its LAV-DF
  ``metadata.json`` for splits and durations, its AV-Deepfake1M files for per-modality
  segments).

**Splits** are each benchmark's own (:data:`OFFICIAL_SPLITS`): LAV-DF ``train``/``dev``/``test``
(the ``split`` field), AV-Deepfake1M ``train``/``val``/``test`` (the *file* an entry is in decides,
as in the SDK; an entry's own ``split`` field that disagrees is overridden with a warning).
Other spellings of the same split (``val``/``Dev``/``validation`` for LAV-DF's ``dev``,
``testing``, ``training``, a ``validation_metadata.json``) are mapped with a warning that counts
them; anything else, or a LAV-DF entry without a split, is a :class:`DataFormatError`.

**Labels**: ``label`` is 1 (fake), 0 (real) or :data:`LABEL_UNKNOWN` (-1: the unlabelled
AV-Deepfake1M test set, predicted for a challenge submission, never trained or scored on). A fake
whose segments are unknown (FakeAVCeleb with ``--no-probe`` or a failed duration probe, an
AV-Deepfake1M ``modify_type`` without segments) keeps ``label`` 1 and empty segments: FakeAVCeleb
fakes are whole-clip and get ``[[0, duration]]`` from the cache's frame count when training or
evaluating (:func:`avdetect.data.dataset.complete_segments`); any other such fake trains at clip
level only, its frame labels masked.
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avdetect.data.formats import FAKEAVCELEB_SEED, FAKEAVCELEB_SPLIT, fakeavceleb_split, read_metadata
from avdetect.errors import DataFormatError
from avdetect.vocab import CATEGORIES, category_of, modalities_of

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
__all__ = ["BUILDERS", "FAKEAVCELEB_SEED", "FAKEAVCELEB_SPLIT", "LABEL_UNKNOWN", "OFFICIAL_SPLITS",
           "WHOLE_CLIP_DATASETS", "ManifestEntry", "build_av1m", "build_fakeavceleb", "build_forged", "build_lavdf",
           "build_realfaces", "build_synthetic", "fakeavceleb_split", "normalize_split", "read_manifest",
           "sample_entries", "summarize", "write_manifest"]

#: ``label`` of a clip whose truth is not public (the AV-Deepfake1M test set).
LABEL_UNKNOWN = -1
#: Datasets whose fakes are manipulated over the whole clip (the segment is ``[0, duration]``).
WHOLE_CLIP_DATASETS = ("fakeavceleb",)
#: Each dataset's split names (train, validation, test roles first). LAV-DF: the ``split`` values its
#: ``LavdfDataModule`` selects; AV-Deepfake1M: the SDK's subsets (``{split}_metadata.json``,
#: ``test_files.txt``; ``testA``/``testB``: AV-Deepfake1M++); FakeAVCeleb: ours (no official one).
OFFICIAL_SPLITS: dict[str, tuple[str, ...]] = {
    "lavdf": ("train", "dev", "test"),
    "av1m": ("train", "val", "test", "testA", "testB"),
    "fakeavceleb": ("train", "val", "test"),
    "synthetic": ("train", "dev", "test"),
    "forged": ("train", "dev", "test"),
    "realfaces": ("train", "dev", "test"),
}
#: Other spellings of the three roles (compared in lower case) -> role.
_SPLIT_ROLES = {"train": "train", "training": "train", "trn": "train",
                "dev": "val", "val": "val", "valid": "val", "validation": "val", "development": "val",
                "test": "test", "testing": "test", "tst": "test"}


def normalize_split(name, dataset: str) -> str | None:
    """``name`` in ``dataset``'s vocabulary (:data:`OFFICIAL_SPLITS`): the official name itself,
    the official name of another spelling of the same role (``Dev``, ``val`` -> LAV-DF's ``dev``),
    or None when it is neither (or not a string)."""
    vocab = OFFICIAL_SPLITS.get(dataset)
    if not isinstance(name, str):
        return None
    if vocab is None or name in vocab:
        return name
    role = _SPLIT_ROLES.get(name.strip().lower())
    return None if role is None else vocab[("train", "val", "test").index(role)]


def _check_splits(names: list, dataset: str, where, files: list[str]) -> list[str]:
    """Official split names for ``names`` (one per entry): spellings mapped with one warning that
    counts them; missing or unknown names raise :class:`DataFormatError` naming an entry."""
    vocab = OFFICIAL_SPLITS[dataset]
    out: list[str] = []
    mapped: dict[tuple[str, str], int] = {}
    for name, file in zip(names, files):
        got = normalize_split(name, dataset)
        if got is None:
            what = "has no 'split'" if name is None else f"has split {name!r}"
            bad = sum(1 for n in names if normalize_split(n, dataset) is None)
            raise DataFormatError(f"{bad} entries have no official split, e.g. {file!r} {what}; "
                                  f"{dataset} splits are {', '.join(vocab)}", where)
        if got != name:
            mapped[(name, got)] = mapped.get((name, got), 0) + 1
        out.append(got)
    if mapped:
        logger.warning("%s: split names mapped to %s's own: %s", where, dataset,
                       ", ".join(f"{a!r} -> {b!r} ({n} entries)" for (a, b), n in sorted(mapped.items())))
    return out


@dataclass
class ManifestEntry:
    """One clip. ``file`` is the benchmark's key (used in prediction files); ``path`` the
    absolute path of the media file."""

    file: str
    path: str
    dataset: str
    split: str
    label: int  # 1 = fake (any segment in either modality), 0 = real, -1 = unknown (unlabelled test set)
    category: str | None  # one of avdetect.vocab.CATEGORIES (FakeAVCeleb folder; derived for the others); None if unknown
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
        if e.label not in (0, 1, LABEL_UNKNOWN):
            raise DataFormatError(f"{where}label must be 0, 1 or {LABEL_UNKNOWN} (unknown), got {e.label!r}")
        if e.category is None and e.label != LABEL_UNKNOWN:
            raise DataFormatError(f"{where}category missing (it may be null only for label {LABEL_UNKNOWN})")
        if e.category is not None and e.category not in CATEGORIES:
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
    present: set[str] = set()
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
            present.add(e.split)
            if split is None or e.split == split:
                entries.append(e)
    if not entries:
        if split:
            raise DataFormatError(f"no entries of split {split!r}; the manifest's splits are {', '.join(sorted(present))}",
                                  p)
        raise DataFormatError("no entries", p)
    return entries


def sample_entries(entries: list[ManifestEntry], n: int | None, seed: int = 0) -> list[ManifestEntry]:
    """A seeded sample of ``n`` entries, stratified by (label, category): each stratum keeps its
    share (largest remainders; every stratum at least one entry when ``n`` allows), drawn at
    random within it. Returned in manifest order. ``n`` None or >= len: all entries."""
    if n is None or n >= len(entries):
        return list(entries)
    if n <= 0:
        return []
    strata: dict[tuple, list[int]] = {}
    for i, e in enumerate(entries):
        strata.setdefault((e.label, e.category or ""), []).append(i)
    keys = sorted(strata, key=str)
    sizes = np.array([len(strata[k]) for k in keys], float)
    quota = sizes * n / sizes.sum()
    take = np.floor(quota).astype(int)
    if n >= len(keys):
        take = np.maximum(take, 1)
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    j = 0
    while take.sum() < n:
        k = order[j % len(keys)]
        if take[k] < sizes[k]:
            take[k] += 1
        j += 1
    while take.sum() > n:  # the minimum of one per stratum overshot: trim the largest
        take[int(np.argmax(take))] -= 1
    labels = np.array([k[0] for k in keys])
    for lab in np.unique(labels):  # n >= 2: every label present in the pool is in the sample
        if n >= 2 and take[labels == lab].sum() == 0:
            give = int(np.argmax(np.where(labels != lab, take, -1)))
            get = int(np.argmax(np.where(labels == lab, sizes, -1)))
            take[give] -= 1
            take[get] += 1
    rng = np.random.default_rng([int(seed), 0x5EED])
    chosen: list[int] = []
    for k, m in zip(keys, take):
        idx = strata[k]
        chosen.extend(idx[i] for i in rng.permutation(len(idx))[:m])
    return [entries[i] for i in sorted(chosen)]


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
    """LAV-DF: ``root/metadata.json`` (else ``metadata.min.json``, the file LAV-DF's own loader
    reads); media at ``root/<file>``; splits ``train``/``dev``/``test`` (:func:`normalize_split`).

    LAV-DF gives one list of fake periods plus which modalities were changed: the periods are
    the visual segments when ``modify_video`` and the audio segments when ``modify_audio``.
    """
    root = Path(root)
    path = root / "metadata.json"
    if not path.is_file() and (root / "metadata.min.json").is_file():
        path = root / "metadata.min.json"
    meta = read_metadata(path)
    if meta.format != "lavdf":
        raise DataFormatError(f"expected LAV-DF metadata (fake_periods), found {meta.format}", path)
    splits = _check_splits([v.split for v in meta.videos], "lavdf", path, [v.file for v in meta.videos])
    out = []
    for v, split in zip(meta.videos, splits):
        segs = v.segments
        empty = np.zeros((0, 2))
        out.append(_entry(v.file, root / v.file, "lavdf", split, segs,
                          segs if v.modify_video else empty, segs if v.modify_audio else empty, v.duration,
                          modify_video=v.modify_video, modify_audio=v.modify_audio))
    _warn_unknown_segments(out, path)
    return _check_files(out, root, check_files)


AV1M_SPLITS = OFFICIAL_SPLITS["av1m"]


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


def _av1m_split_files(root: Path) -> list[tuple[str, str, Path, str]]:
    """``(split, kind, path, media folder)`` of the split files under ``root``: per split its
    ``{split}_metadata.json`` (kind ``metadata``), else its ``{split}_files.txt`` (``files``: no labels,
    the SDK's ``test_files.txt``). Other ``*_metadata.json`` / ``*_files.txt`` names are mapped
    onto a missing official split with a warning (``validation_metadata.json`` -> ``val``) or,
    when that split is present or the name means nothing, ignored with a warning."""
    found: dict[str, tuple[str, Path, str]] = {}
    for split in AV1M_SPLITS:
        m, f = root / f"{split}_metadata.json", root / f"{split}_files.txt"
        if m.is_file():
            found[split] = ("metadata", m, split)
            if f.is_file():
                logger.info("%s: labels from %s are used; the file list is not needed", f, m.name)
        elif f.is_file():
            found[split] = ("files", f, split)
    others = sorted(list(root.glob("*_metadata.json")) + list(root.glob("*_files.txt")))
    for f in others:
        prefix, kind = f.name.rsplit("_", 1)
        if prefix in AV1M_SPLITS:
            continue
        kind = "metadata" if kind == "metadata.json" else "files"
        split = normalize_split(prefix, "av1m")
        if split is not None and split not in found:
            logger.warning("%s: not an AV-Deepfake1M file name ({train,val}_metadata.json, test_files.txt); read as "
                           "split %r (media under %s/)", f, split, prefix)
            found[split] = (kind, f, prefix)
        elif split is not None:
            logger.warning("%s: ignored: split %r is already read from %s", f, split, found[split][1].name)
        else:
            logger.warning("%s: ignored: %r is not an AV-Deepfake1M split (%s)", f, prefix, ", ".join(AV1M_SPLITS))
    return [(s, *found[s]) for s in AV1M_SPLITS if s in found]


def _read_file_list(path: Path) -> list[str]:
    """The SDK's ``test_files.txt``: one file key per line (blank lines ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read: {err}", path) from None
    names = [x.strip() for x in lines if x.strip()]
    if len(set(names)) != len(names):
        dup = next(n for i, n in enumerate(names) if n in names[:i])
        raise DataFormatError(f"{dup!r} is listed twice", path)
    return names


def _warn_unknown_segments(entries: list[ManifestEntry], where) -> int:
    """Log (and count) the fakes without any segment: they train at clip level only."""
    bad = [e for e in entries if e.label == 1 and not (e.fake_segments or e.visual_segments or e.audio_segments)]
    if bad:
        whole = bad[0].dataset in WHOLE_CLIP_DATASETS
        logger.warning("%s: %d of %d fake clips have no segments (e.g. %s): %s", where, len(bad),
                       sum(e.label == 1 for e in entries), bad[0].file,
                       "their whole-clip segment is taken from the cache's frame count when training and evaluating"
                       if whole else "they train as fake at clip level only (frame losses masked) and count as "
                       "videos without ground-truth segments in AP/AR")
    return len(bad)


def build_av1m(root: str | Path, check_files: bool = True, dataset: str = "av1m") -> list[ManifestEntry]:
    """AV-Deepfake1M in the layout the ``avdeepfake1m`` SDK reads (``AVDeepfake1mDataModule``)::

        train_metadata.json  train/   val_metadata.json  val/   test_files.txt  test/

    Labelled splits from ``{split}_metadata.json``; the split is the file's (an entry's own
    ``split`` field that disagrees is overridden, with a warning that counts them). The test set
    (``test_files.txt``, no labels in the public release) becomes entries with label
    :data:`LABEL_UNKNOWN`, to be predicted for a challenge submission (``recipes/evaluate.py``).
    ``modify_type`` and the segment lists are checked against each other: where they disagree a
    modality counts as modified when either says so, with a warning that counts the clips."""
    root = Path(root)
    files = _av1m_split_files(root)
    if not files:
        raise DataFormatError("no {train,val}_metadata.json or test_files.txt found", root)
    out = []
    for split, kind, f, folder in files:
        if kind == "files":
            names = _read_file_list(f)
            for name in names:
                out.append(ManifestEntry(file=name, path=str(_av1m_path(root, folder, name)), dataset=dataset,
                                         split=split, label=LABEL_UNKNOWN, category=None, modify_video=False,
                                         modify_audio=False))
            logger.info("%s: %d clips without labels (split %r): predicted, never trained or scored on", f, len(names),
                        split)
            continue
        if _empty_json_list(f):  # a split without clips (e.g. a test-only synthetic set)
            logger.info("%s lists no clips; skipped", f)
            continue
        meta = read_metadata(f)
        if meta.format != "av1m":
            raise DataFormatError(f"expected AV-Deepfake1M metadata (fake_segments), found {meta.format}", f)
        moved: list[str] = []
        disagree: dict[str, list[str]] = {}
        for v in meta.videos:
            if "visual" not in v.extra_segments or "audio" not in v.extra_segments:
                raise DataFormatError(f"{v.file!r}: visual_fake_segments / audio_fake_segments missing", f)
            if v.split is not None and v.split != split:
                moved.append(v.file)
            has_v, has_a = len(v.extra_segments["visual"]) > 0, len(v.extra_segments["audio"]) > 0
            if v.category is not None:  # modify_type given
                if v.modify_video != has_v:
                    disagree.setdefault("visual", []).append(v.file)
                if v.modify_audio != has_a:
                    disagree.setdefault("audio", []).append(v.file)
            if len(v.segments) and not (has_v or has_a):
                disagree.setdefault("fake_segments without per-modality segments", []).append(v.file)
            out.append(_entry(v.file, _av1m_path(root, folder, v.file), dataset, split, v.segments,
                              v.extra_segments["visual"], v.extra_segments["audio"], v.duration,
                              modify_video=v.modify_video or has_v, modify_audio=v.modify_audio or has_a))
        if moved:
            logger.warning("%s: %d entries name another split in their 'split' field (e.g. %s); the file decides, as "
                           "in the avdeepfake1m SDK: they are in split %r", f, len(moved), moved[0], split)
        if disagree:
            n = len({x for v in disagree.values() for x in v})
            logger.warning("%s: modify_type and the segment lists disagree for %d clips (%s); a modality counts as "
                           "modified when either says so", f, n,
                           "; ".join(f"{k}: {len(v)}, e.g. {v[0]}" for k, v in sorted(disagree.items())))
    _warn_unknown_segments([e for e in out if e.label != LABEL_UNKNOWN], root)
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
    _warn_unknown_segments([e for e in out if os.path.isfile(e.path) or not check_files],
                           csv_path if csv_path.is_file() else root)
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
    """Counts per split and label (real, fake, unlabelled), for the command line."""
    out: dict = {"n": len(entries), "splits": {}}
    for e in entries:
        s = out["splits"].setdefault(e.split, {"real": 0, "fake": 0, "unlabelled": 0})
        s["unlabelled" if e.label == LABEL_UNKNOWN else "fake" if e.label else "real"] += 1
    return out
