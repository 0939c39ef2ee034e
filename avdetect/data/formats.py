"""Dataset file formats (DESIGN.md section 4): parse the benchmarks' ground truth and the
prediction files, all times in seconds.

* ground truth (:func:`read_metadata`, told apart by their fields): LAV-DF ``metadata.json``
  (entries with ``fake_periods``, ``modify_video``, ``modify_audio``), AV-Deepfake1M
  ``{split}_metadata.json`` (entries with ``fake_segments``, ``visual_fake_segments``,
  ``audio_fake_segments``, ``modify_type``), or FakeAVCeleb ``meta_data.csv`` (detection only;
  the video key is ``<category>/<race>/<gender>/<id>/<file>``, the directory column without a
  leading ``FakeAVCeleb/``). The official ``meta_data.csv`` has the header
  ``source,target1,target2,method,category,type,race,gender,path,`` (nine names and a trailing
  comma): ``path`` holds the *file name* and the tenth, unnamed column the directory
  (``FakeAVCeleb/RealVideo-RealAudio/African/men/id00076``); ``category`` is the letter A-D of
  ``type`` (A RealVideo-RealAudio, B RealVideo-FakeAudio, C FakeVideo-RealAudio,
  D FakeVideo-FakeAudio). The release lists some clips twice (the same file under two methods,
  e.g. ``faceswap-wav2lip`` and ``wav2lip``): each file is kept once, with a warning. FakeAVCeleb
  has no official split; the reader gives each video the subject-disjoint split of
  :func:`fakeavceleb_split` (the manifest's), so ``--split test`` selects the same clips as the
  manifest's test split;
* predictions for localisation (:func:`read_predictions`, AV-Deepfake1M challenge format):
  JSON ``{file: [[confidence, start_s, end_s], ...], ...}``, proposals in ranked order; times in
  seconds (``units="frames"`` reads LAV-DF's own pipeline, whose ``post_process.py`` writes frame
  numbers and whose ``metrics.py`` divides them by 25);
* detection scores (:func:`read_scores`): text lines ``file;score`` (higher = more likely fake).

Category and ``modify_type`` names are those of :mod:`avdetect.vocab`. Every problem with a
file raises :class:`avdetect.errors.DataFormatError` naming the file and the entry. The
manifest builders (:mod:`avdetect.data.manifest`) and the evaluation
(:mod:`avdetect.evaluation`) both read the benchmarks through this one parser per format.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avdetect.errors import ConfigError, DataFormatError
from avdetect.timegrid import FPS, frames_at_rate_to_seconds, frames_to_seconds
from avdetect.vocab import CATEGORIES, MODIFY_TYPES, modalities_of

__all__ = ["AV1M_TARGETS", "FAKEAVCELEB_SEED", "FAKEAVCELEB_SPLIT", "Metadata", "PREDICTION_UNITS", "VideoLabel",
           "category_names", "fakeavceleb_split", "read_metadata", "read_predictions", "read_scores"]

logger = logging.getLogger(__name__)

AV1M_TARGETS = {"fake": "fake_segments", "visual": "visual_fake_segments", "audio": "audio_fake_segments"}
#: Units of the start / end times in a localisation prediction file.
PREDICTION_UNITS = ("seconds", "frames")
FAKEAVCELEB_SPLIT = (0.7, 0.15, 0.15)  # train / val / test share of subjects
FAKEAVCELEB_SEED = 2024
#: FakeAVCeleb's ``category`` letters (meta_data.csv) -> its ``type`` (folder) names.
FAKEAVCELEB_LETTERS = {"A": "RealVideo-RealAudio", "B": "RealVideo-FakeAudio", "C": "FakeVideo-RealAudio",
                       "D": "FakeVideo-FakeAudio"}


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


def category_names(dataset: str | None) -> tuple[str, str, str, str]:
    """The four category names a dataset reports per-category accuracy under, in the model's
    order (:data:`avdetect.vocab.CATEGORIES`): AV-Deepfake1M's ``modify_type`` names for ``av1m``,
    FakeAVCeleb's folder names (``RealVideo-FakeAudio``, ...) for every other dataset."""
    return MODIFY_TYPES if dataset == "av1m" else CATEGORIES


def rename_category(name: str | None, dataset: str | None) -> str | None:
    """A category or ``modify_type`` name in the naming of ``dataset`` (:func:`category_names`)."""
    if name is None:
        return None
    mv, ma = modalities_of(name)
    return category_names(dataset)[int(mv) + 2 * int(ma)]


@dataclass
class VideoLabel:
    """Ground truth of one video, whatever file it came from."""

    file: str
    segments: np.ndarray  # (n, 2) seconds: the segments scored (fake, or one modality's)
    is_fake: bool
    split: str | None = None
    modify_video: bool = False
    modify_audio: bool = False
    category: str | None = None  # FakeAVCeleb folder name (vocab.CATEGORIES) / AV-Deepfake1M modify_type (vocab.MODIFY_TYPES)
    extra_segments: dict[str, np.ndarray] = field(default_factory=dict)  # AV-Deepfake1M: "visual", "audio"
    duration: float | None = None  # seconds: LAV-DF 'duration', AV-Deepfake1M 'video_frames' on the 25 Hz grid
    subject: str | None = None  # FakeAVCeleb identity folder (id00076)


@dataclass
class Metadata:
    """A parsed ground-truth file: its format name and one label per video, in file order."""

    path: str
    format: str  # "lavdf" | "av1m" | "fakeavceleb"
    videos: list[VideoLabel]


# ---------------------------------------------------------------------------------------
# low-level readers
def _read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError("file not found", p) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read: {err}", p) from None


def _parse_json(text: str, path: str | Path):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"not valid JSON: {err}", path) from None


def _read_json(path: str | Path):
    return _parse_json(_read_text(path), path)


def _number(x, path, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise DataFormatError(f"{where}: expected a number, got {x!r}", path)
    v = float(x)
    if not math.isfinite(v):
        raise DataFormatError(f"{where}: value {x!r} is not finite", path)
    return v


def _segments(value, path, where: str) -> np.ndarray:
    """Validate a list of [start, end] pairs (seconds) -> (n, 2) float64."""
    if not isinstance(value, list):
        raise DataFormatError(f"{where}: expected a list of [start, end] pairs, got {type(value).__name__}", path)
    out = np.zeros((len(value), 2))
    for i, seg in enumerate(value):
        w = f"{where} segment {i}"
        if not isinstance(seg, (list, tuple)) or len(seg) != 2:
            raise DataFormatError(f"{w}: expected [start, end], got {seg!r}", path)
        s, e = _number(seg[0], path, w), _number(seg[1], path, w)
        if s > e:
            raise DataFormatError(f"{w}: start {s} > end {e}", path)
        out[i] = s, e
    return out


def read_predictions(path: str | Path, units: str = "seconds", fps: float = FPS) -> dict[str, np.ndarray]:
    """Localisation predictions -> {file: (n, 3) float64 [confidence, start_s, end_s]}, order kept.

    ``units="frames"``: the file's start / end are frame numbers at ``fps`` frames per second
    (LAV-DF's own BA-TFD pipeline: ``post_process.py`` multiplies by the fps, ``metrics.py``
    divides by 25) and are converted to seconds."""
    if units not in PREDICTION_UNITS:
        raise ConfigError(f"unknown prediction units {units!r}; choose one of {', '.join(PREDICTION_UNITS)}")
    if units == "frames":
        try:
            frames_at_rate_to_seconds(0, fps)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        out = read_predictions(path)
        for arr in out.values():
            arr[:, 1:] = frames_at_rate_to_seconds(arr[:, 1:], fps)
        return out
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(f"expected a JSON object {{file: [[confidence, start, end], ...]}}, got {type(data).__name__}", path)
    out: dict[str, np.ndarray] = {}
    for name, rows in data.items():
        where = f"entry {name!r}"
        if not isinstance(rows, list):
            raise DataFormatError(f"{where}: expected a list of [confidence, start, end], got {type(rows).__name__}", path)
        # Fast path: a well-formed entry converts to an (n, 3) numeric array in one call.
        try:
            fast = np.array(rows) if rows else np.zeros((0, 3))
        except ValueError:  # ragged rows
            fast = None
        if (
            fast is not None and fast.ndim == 2 and fast.shape[1] == 3 and fast.dtype.kind in "if"
            and np.isfinite(fast).all() and (fast[:, 1] <= fast[:, 2]).all()
        ):
            out[str(name)] = fast.astype(np.float64, copy=False)
            continue
        # Slow path: find the offending proposal and say what is wrong with it.
        arr = np.zeros((len(rows), 3))
        for i, row in enumerate(rows):
            w = f"{where} proposal {i}"
            if not isinstance(row, (list, tuple)) or len(row) != 3:
                raise DataFormatError(f"{w}: expected [confidence, start, end], got {row!r}", path)
            c, s, e = (_number(x, path, w) for x in row)
            if s > e:
                raise DataFormatError(f"{w}: start {s} > end {e}", path)
            arr[i] = c, s, e
        out[str(name)] = arr
    return out


def read_scores(path: str | Path) -> dict[str, float]:
    """Detection scores, one ``file;score`` per line (blank lines ignored) -> {file: score}."""
    p = Path(path)
    lines = _read_text(p).splitlines()
    out: dict[str, float] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        name, sep, value = line.strip().rpartition(";")
        if not sep or not name:
            raise DataFormatError(f"line {n}: expected 'file;score', got {line!r}", p)
        try:
            score = float(value)
        except ValueError:
            raise DataFormatError(f"line {n}: score {value!r} is not a number", p) from None
        if not math.isfinite(score):
            raise DataFormatError(f"line {n}: score {value!r} is not finite", p)
        if name in out:
            raise DataFormatError(f"line {n}: file {name!r} appears twice", p)
        out[name] = score
    if not out:
        raise DataFormatError("no 'file;score' lines", p)
    return out


# ---------------------------------------------------------------------------------------
# metadata
def _bool(entry: dict, key: str, path, where: str) -> bool:
    v = entry.get(key)
    if not isinstance(v, bool):
        raise DataFormatError(f"{where}: field {key!r} must be true or false, got {v!r}", path)
    return v


def _read_fakeavceleb_csv(path: Path, seed: int = FAKEAVCELEB_SEED) -> Metadata:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"cannot read: {err}", path) from None
    if not rows:
        raise DataFormatError("empty CSV", path)
    header = [h.strip() for h in rows[0]]
    while header and not header[-1]:
        header.pop()  # the official header ends with a comma
    if "type" not in header or "path" not in header:
        raise DataFormatError(f"not a FakeAVCeleb meta_data.csv: header {header} lacks 'type' or 'path'", path)
    i_type = header.index("type")
    i_letter = header.index("category") if "category" in header else None
    if "filename" in header:  # a re-saved copy that names both columns
        i_name, i_dir = header.index("filename"), header.index("path")
    else:  # the official file: 'path' holds the file name, the unnamed next column the directory
        i_name, i_dir = header.index("path"), header.index("path") + 1
    need = max(i_name, i_dir, i_type) + 1
    videos: list[VideoLabel] = []
    seen: dict[str, int] = {}
    duplicates, letter_mismatch, folder_mismatch = [], [], []
    for n, row in enumerate(rows[1:], start=2):
        while row and not row[-1].strip():
            row = row[:-1]  # trailing commas
        if not row:
            continue
        if len(row) < need:
            raise DataFormatError(f"line {n}: expected {need} values (..., file name, directory), got {len(row)}",
                                  path)
        category, fname, directory = row[i_type].strip(), row[i_name].strip(), row[i_dir].strip()
        if category not in CATEGORIES:
            raise DataFormatError(f"line {n}: unknown type {category!r}; known: {', '.join(CATEGORIES)}", path)
        if i_letter is not None and FAKEAVCELEB_LETTERS.get(row[i_letter].strip()) != category:
            letter_mismatch.append(n)
        modify_video, modify_audio = modalities_of(category)
        parts = [q for q in directory.replace("\\", "/").split("/") if q]
        if parts and parts[0] == "FakeAVCeleb":
            parts = parts[1:]
        if parts and parts[0] in CATEGORIES and parts[0] != category:
            folder_mismatch.append(n)
        key = "/".join([*parts, fname])
        if key in seen:
            if videos[seen[key]].category != category:
                raise DataFormatError(f"line {n}: {key!r} is listed again with another type ({category}, before "
                                      f"{videos[seen[key]].category})", path)
            duplicates.append(key)
            continue
        seen[key] = len(videos)
        videos.append(
            VideoLabel(
                file=key,
                segments=np.zeros((0, 2)),
                is_fake=modify_video or modify_audio,
                modify_video=modify_video,
                modify_audio=modify_audio,
                category=category,
                subject=parts[3] if len(parts) == 4 else None,
            )
        )
    if duplicates:
        logger.warning("%s: %d rows list a file already listed (the release names some clips under two methods, "
                       "e.g. faceswap-wav2lip and wav2lip), e.g. %s; each file is kept once", path, len(duplicates),
                       duplicates[0])
    if letter_mismatch:
        logger.warning("%s: %d rows have a category letter that does not match their type (e.g. line %d); the type "
                       "(the folder name) is used", path, len(letter_mismatch), letter_mismatch[0])
    if folder_mismatch:
        logger.warning("%s: %d rows sit in another category folder than their type (e.g. line %d); the type is used",
                       path, len(folder_mismatch), folder_mismatch[0])
    split_of = fakeavceleb_split([v.subject for v in videos if v.subject], seed=seed)
    for v in videos:
        v.split = split_of.get(v.subject) if v.subject else None
    return Metadata(str(path), "fakeavceleb", videos)


def read_metadata(path: str | Path, target: str = "fake", fakeavceleb_seed: int = FAKEAVCELEB_SEED) -> Metadata:
    """Parse a ground-truth file; the format is recognised from its fields (see module docstring).

    ``target`` picks, for AV-Deepfake1M, which segments are scored: ``fake`` (all),
    ``visual`` or ``audio``. ``fakeavceleb_seed``: seed of the subject-disjoint split given to
    FakeAVCeleb's videos (the manifest's ``--seed``).
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return _read_fakeavceleb_csv(p, seed=fakeavceleb_seed)
    data = _read_json(p)
    if not isinstance(data, list) or not data:
        raise DataFormatError("expected a non-empty JSON list of video entries", p)
    first = data[0]
    if not isinstance(first, dict):
        raise DataFormatError(f"entry 0: expected an object, got {type(first).__name__}", p)
    if "fake_periods" in first:
        fmt = "lavdf"
    elif "fake_segments" in first:
        fmt = "av1m"
    else:
        raise DataFormatError("entry 0: neither 'fake_periods' (LAV-DF) nor 'fake_segments' (AV-Deepfake1M) present", p)
    if target not in AV1M_TARGETS:
        raise DataFormatError(f"unknown target {target!r}; choose one of {sorted(AV1M_TARGETS)}", p)
    if fmt == "lavdf" and target != "fake":
        raise DataFormatError("LAV-DF metadata has only 'fake_periods': use the visual_only / audio_only subsets instead of a target", p)

    videos: list[VideoLabel] = []
    seen: set[str] = set()
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise DataFormatError(f"entry {i}: expected an object, got {type(entry).__name__}", p)
        name = entry.get("file")
        if not isinstance(name, str) or not name:
            raise DataFormatError(f"entry {i}: missing or empty 'file'", p)
        where = f"entry {i} ({name!r})"
        if name in seen:
            raise DataFormatError(f"{where}: file listed twice", p)
        seen.add(name)
        split = entry.get("split")
        if fmt == "lavdf":
            if "fake_periods" not in entry:
                raise DataFormatError(f"{where}: missing 'fake_periods'", p)
            segs = _segments(entry["fake_periods"], p, f"{where} fake_periods")
            dur = entry.get("duration")
            videos.append(
                VideoLabel(
                    file=name, segments=segs, is_fake=len(segs) > 0, split=split,
                    modify_video=_bool(entry, "modify_video", p, where),
                    modify_audio=_bool(entry, "modify_audio", p, where),
                    duration=_number(dur, p, f"{where} duration") if dur is not None else None,
                )
            )
        else:
            key = AV1M_TARGETS[target]
            for k in {key, "fake_segments"}:
                if k not in entry:
                    raise DataFormatError(f"{where}: missing {k!r}", p)
            segs = _segments(entry[key], p, f"{where} {key}")
            fake = _segments(entry["fake_segments"], p, f"{where} fake_segments") if key != "fake_segments" else segs
            mtype = entry.get("modify_type")
            if mtype is not None and mtype not in MODIFY_TYPES:
                raise DataFormatError(f"{where}: unknown modify_type {mtype!r}; known: {', '.join(MODIFY_TYPES)}", p)
            mv, ma = modalities_of(mtype) if mtype is not None else (False, False)
            extra = {m: _segments(entry[k], p, f"{where} {k}") for m, k in (("visual", "visual_fake_segments"),
                                                                           ("audio", "audio_fake_segments")) if k in entry}
            vf = entry.get("video_frames")
            videos.append(
                VideoLabel(
                    file=name, segments=segs, is_fake=len(fake) > 0, split=split,
                    modify_video=mv, modify_audio=ma, category=mtype, extra_segments=extra,
                    duration=frames_to_seconds(_number(vf, p, f"{where} video_frames")) if vf is not None else None,
                )
            )
    return Metadata(str(p), fmt, videos)
