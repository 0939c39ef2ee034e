"""Preprocessing cache: decode and face-track every clip once, store what training reads.

Layout of a cache folder::

    clips/ab/ab12...ef.safetensors   one shard per clip (name: SHA-1 of the manifest key)
    index.jsonl                      one line per finished clip (appended as clips finish)
    failures.jsonl                   one line per clip that could not be processed, with the reason
    cache_info.json                  settings used: crop kinds and sizes, decode size, audio dtype,
                                     package version

A shard holds, on the 25 Hz grid (``n`` frames):

* mouth crops ``(n, M, M, 3)`` uint8 RGB, face crops ``(n, F, F, 3)`` uint8 (only with
  ``faces=True``), with ``M``, ``F`` = :data:`avdetect.vocab.MOUTH_SIZE`, ``FACE_SIZE`` (96, 128).
  Cache format 2 (``crop_codec`` ``webp``, the default for new caches) stores each frame's crop
  as a lossless WebP image: ``mouth.webp`` (the images' bytes, concatenated, uint8) and
  ``mouth.offsets`` ``(n + 1,)`` int64 (frame ``i`` is bytes ``offsets[i]:offsets[i+1]``), the
  same for ``face``; a window decodes only its frames and gets exactly the arrays format 1
  stores. Format 1 (``crop_codec`` ``raw``, caches written before, or ``--crop-codec raw``)
  stores the arrays as they are (``mouth``, ``face``). Both are read; a cache is never mixed;
* ``valid`` ``(n,)`` uint8 (1 = a face is known; crops are black elsewhere);
* ``audio`` ``(n * 640,)`` int16 mono 16 kHz (zero-padded / cut to the frame count);
* metadata strings: ``file``, ``n_frames``, ``has_video``, ``has_audio``, ``coverage``, ``format``.

Size (measured on real talking heads, recipes/README.md): raw crops are 27.6 KB (mouth) + 49.2 KB
(face) per frame, 7.0 GB per hour of video with faces; lossless WebP holds the same crops in 2.6 GB
per hour (about 1.3 ms per frame of CPU to decode mouth and face).

safetensors, not pickle, and readable by slices: a training window reads only its frames.
Writing is resumable: each shard is written under a temporary name and renamed when complete,
so a shard on disk is always whole; clips already in the index (or whose shard exists, when a
run was killed between the rename and the index line) are not redone. A clip that fails (bad
file, decoder error) is written to ``failures.jsonl`` with the reason and skipped; the run goes on.

Frames are decoded at :data:`avdetect.vocab.DECODE_MAX_SIDE` by default, the size ``detect``
tracks faces at. ``cache_info.json`` records that decode size and the crop sizes, and a cache
is never mixed or read against other ones: resuming ``preprocess`` with another ``max_side``,
or opening a :class:`FeatureCache` for another decode size or for a model whose
``input_mouth_size`` / ``input_face_size`` differ, raises :class:`DataFormatError` naming both
values.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdetect.data.manifest import ManifestEntry
from avdetect._version import __version__
from avdetect.errors import AVDetectError, DataFormatError
from avdetect.timegrid import frame_to_sample, samples_to_frames
from avdetect.vocab import CROP_RULE, DECODE_MAX_SIDE, FACE_SIZE, MOUTH_SIZE

logger = logging.getLogger(__name__)

INDEX_NAME = "index.jsonl"
FAILURES_NAME = "failures.jsonl"
INFO_NAME = "cache_info.json"
CACHE_FORMAT = 2  # 2: crops as lossless WebP per frame (crop_codec "webp"); 1: raw arrays (crop_codec "raw")
CROP_CODECS = ("webp", "raw")
#: Crop sizes and codec of caches written before cache_info.json recorded them (they were fixed then).
_LEGACY_SIZES = {"mouth_size": 96, "face_size": 128, "crop_codec": "raw", "crop_rule": 1}
#: Face backends whose crops do not depend on the crop rule (no landmarks, no roll).
_RULE_FREE_BACKENDS = ("opencv",)


def crop_rule_problem(info: dict) -> str | None:
    """Why crops recorded in ``info`` (a cache's) do not follow this avdetect's crop rule
    (:data:`avdetect.faces.crops.CROP_RULE`), or None when they do (Haar crops always do)."""
    rule = info.get("crop_rule", 1)
    if info.get("backend") in _RULE_FREE_BACKENDS or rule == CROP_RULE:
        return None
    return (f"its {info.get('backend')} crops follow crop rule {rule} ({'axis-aligned' if rule == 1 else 'unknown'}), "
            f"this avdetect makes rule {CROP_RULE} (levelled on the eyes)")


def _webp_available() -> bool:
    try:
        from PIL import features

        return bool(features.check("webp"))
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        return False


def encode_crops(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, S, S, 3)`` uint8 crops -> (their lossless WebP images concatenated, as uint8;
    ``(n + 1,)`` int64 byte offsets). :func:`decode_crops` gives back the identical arrays."""
    from PIL import Image

    blobs = []
    for f in frames:
        bio = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(f)).save(bio, format="WEBP", lossless=True, method=0, quality=0)
        blobs.append(bio.getvalue())
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    data = np.frombuffer(b"".join(blobs), np.uint8).copy() if blobs else np.zeros(1, np.uint8)
    return data, offsets


def decode_crops(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The crops of ``offsets`` (``(m + 1,)``, absolute) from ``data`` (the bytes
    ``offsets[0]:offsets[-1]``) -> ``(m, S, S, 3)`` uint8."""
    from PIL import Image

    buf = data.tobytes()
    base = int(offsets[0])
    frames = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        with Image.open(io.BytesIO(buf[int(a) - base:int(b) - base])) as im:
            frames.append(np.asarray(im if im.mode == "RGB" else im.convert("RGB")))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def shard_relpath(file: str) -> str:
    """Where the shard of manifest key ``file`` lives, relative to the cache folder."""
    h = hashlib.sha1(file.encode("utf-8")).hexdigest()
    return f"clips/{h[:2]}/{h}.safetensors"


@dataclass
class CacheRecord:
    """One line of ``index.jsonl``."""

    file: str
    shard: str
    n_frames: int
    has_video: bool
    has_audio: bool
    coverage: float
    seconds: float = 0.0  # processing time

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# one clip
def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def audio_from_int16(audio: np.ndarray) -> np.ndarray:
    return audio.astype(np.float32) * (1.0 / 32767.0)


def process_clip(entry: ManifestEntry, cache_dir: str | Path, faces: bool = False, backend: str = "auto",
                 max_side: int = DECODE_MAX_SIDE, crop_codec: str = "webp") -> CacheRecord:
    """Decode + face-track one clip and write its shard atomically (crops stored as
    ``crop_codec``: ``webp`` lossless images, or ``raw`` arrays). Raises on failure."""
    if crop_codec not in CROP_CODECS:
        raise DataFormatError(f"unknown crop codec {crop_codec!r}; choose one of {', '.join(CROP_CODECS)}")
    from safetensors.numpy import save_file

    from avdetect.faces import FaceTracker
    from avdetect.media import load_media

    t0 = time.perf_counter()
    media = load_media(entry.path, max_side=max_side)
    info = media.info
    if info.has_video:
        n = info.n_frames
    else:
        n = samples_to_frames(info.n_samples)
    if n < 1:
        raise DataFormatError("the clip holds no whole frame", entry.path)
    tensors: dict[str, np.ndarray] = {}
    coverage = 0.0
    if info.has_video:
        track = FaceTracker(backend=backend, crops=True).track(media)
        m = len(track.valid)
        if m != n:  # the decoder may deliver a frame less / more than the header promised
            logger.debug("%s: %d tracked frames, header says %d", entry.path, m, n)
            n = m
        crops = {"mouth": track.mouth, **({"face": track.face} if faces else {})}
        for name, arr in crops.items():
            if crop_codec == "webp":
                tensors[f"{name}.webp"], tensors[f"{name}.offsets"] = encode_crops(arr)
            else:
                tensors[name] = np.ascontiguousarray(arr)
        tensors["valid"] = track.valid.astype(np.uint8)
        coverage = track.coverage
    if info.has_audio:
        a = media.audio
        need = frame_to_sample(n)
        a = a[:need] if len(a) >= need else np.pad(a, (0, need - len(a)))
        tensors["audio"] = audio_to_int16(a)
    rel = shard_relpath(entry.file)
    out = Path(cache_dir) / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp")
    meta = {"file": entry.file, "n_frames": str(n), "has_video": str(info.has_video), "has_audio": str(info.has_audio),
            "coverage": f"{coverage:.6f}", "format": str(2 if crop_codec == "webp" else 1), "crop_codec": crop_codec}
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, out)
    return CacheRecord(entry.file, rel, n, info.has_video, info.has_audio, round(coverage, 6),
                       round(time.perf_counter() - t0, 3))


def _record_from_shard(cache_dir: Path, file: str) -> CacheRecord | None:
    """Rebuild the index line of a complete shard left by a run killed before it wrote it."""
    from safetensors import safe_open

    rel = shard_relpath(file)
    path = cache_dir / rel
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as fh:
            m = fh.metadata() or {}
    except Exception as err:  # noqa: BLE001 - any unreadable shard is simply redone
        logger.warning("%s: unreadable shard (%s); it will be redone", path, err)
        return None
    if m.get("file") != file:
        return None
    return CacheRecord(file, rel, int(m["n_frames"]), m["has_video"] == "True", m["has_audio"] == "True",
                       float(m["coverage"]))


def _worker(args: tuple) -> tuple[str, CacheRecord | None, str | None]:
    entry, cache_dir, faces, backend, max_side, crop_codec = args
    try:
        return entry.file, process_clip(entry, cache_dir, faces=faces, backend=backend, max_side=max_side,
                                        crop_codec=crop_codec), None
    except AVDetectError as err:
        return entry.file, None, f"{type(err).__name__}: {err}"
    except Exception as err:  # noqa: BLE001 - logged to failures.jsonl with the traceback, never lost
        return entry.file, None, f"{type(err).__name__}: {err} | {traceback.format_exc(limit=3)!r}"


def _init_worker() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass


def _read_jsonl(path: Path) -> list[dict]:
    """Lines of a JSONL file; an incomplete last line (a killed writer) is ignored."""
    if not path.is_file():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                logger.warning("%s: ignoring an incomplete last line", path)
                continue
            raise DataFormatError(f"line {n}: not valid JSON", path) from None
    return out


@dataclass
class PreprocessSummary:
    total: int
    done_before: int
    processed: int
    failed: int
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


def preprocess(entries: list[ManifestEntry], cache_dir: str | Path, workers: int = 1, faces: bool = False,
               backend: str = "auto", max_side: int = DECODE_MAX_SIDE, retry_failed: bool = False,
               quiet: bool = False, crop_codec: str | None = None) -> PreprocessSummary:
    """Fill ``cache_dir`` with the shards of ``entries`` (see the module docstring).

    ``crop_codec``: ``webp`` (lossless, about a third of the raw size) or ``raw``; None: ``webp``
    for a new cache, the cache's own when resuming one (a format-1 cache stays raw)."""
    from tqdm import tqdm

    if crop_codec is not None and crop_codec not in CROP_CODECS:
        raise DataFormatError(f"unknown crop codec {crop_codec!r}; choose one of {', '.join(CROP_CODECS)}")
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    info_path = cache / INFO_NAME
    from avdetect.faces import resolve_backend_name

    backend = resolve_backend_name(backend)  # "auto" is recorded as what it is here
    old = {**_LEGACY_SIZES, **_read_info(info_path)} if info_path.is_file() else None
    if crop_codec is None:
        crop_codec = old["crop_codec"] if old is not None else "webp"
    if crop_codec == "webp" and not _webp_available():
        raise DataFormatError("this Pillow has no WebP support: install a Pillow wheel with WebP, or preprocess with "
                              "--crop-codec raw", cache)
    info = {"format": 2 if crop_codec == "webp" else 1, "crop_codec": crop_codec, "faces": faces, "backend": backend,
            "max_side": max_side, "mouth_size": MOUTH_SIZE, "face_size": FACE_SIZE, "crop_rule": CROP_RULE,
            "audio": "int16", "avdetect_version": __version__}
    if old is not None:
        _check_format(old, cache)
        diff = [f"{k}={old.get(k)} (now {info[k]})" for k in ("faces", "backend", "max_side", "mouth_size", "face_size",
                                                             "crop_codec") if old.get(k) != info[k]]
        rule = crop_rule_problem(old)
        if rule:
            diff.append(rule)
        if diff:
            raise DataFormatError(f"cache was made with {', '.join(diff)}; use the same settings or another folder",
                                  cache)
    else:
        info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    index_path, fail_path = cache / INDEX_NAME, cache / FAILURES_NAME
    done = {d["file"] for d in _read_jsonl(index_path)}
    failed_before = {d["file"] for d in _read_jsonl(fail_path)}
    seen: set[str] = set()
    todo: list[ManifestEntry] = []
    recovered: list[CacheRecord] = []
    for e in entries:
        if e.file in seen:
            raise DataFormatError(f"{e.file!r} appears twice in the manifest")
        seen.add(e.file)
        if e.file in done or (e.file in failed_before and not retry_failed):
            continue
        rec = _record_from_shard(cache, e.file)
        if rec is not None:
            recovered.append(rec)
        else:
            todo.append(e)
    done_before = len(entries) - len(todo)
    t0 = time.perf_counter()
    n_ok = n_fail = 0
    with index_path.open("a", encoding="utf-8") as index, fail_path.open("a", encoding="utf-8") as fails:
        for rec in recovered:
            index.write(rec.to_json() + "\n")
        index.flush()
        bar = tqdm(total=len(todo), desc="preprocess", unit="clip", disable=quiet, smoothing=0.1)
        jobs = [(e, str(cache), faces, backend, max_side, crop_codec) for e in todo]
        paths = {e.file: e.path for e in todo}

        def handle(file: str, rec: CacheRecord | None, err: str | None) -> None:
            nonlocal n_ok, n_fail
            if rec is not None:
                index.write(rec.to_json() + "\n")
                index.flush()
                n_ok += 1
            else:
                fails.write(json.dumps({"file": file, "path": paths[file], "error": err}) + "\n")
                fails.flush()
                logger.warning("preprocess: %s failed: %s", file, err)
                n_fail += 1
            bar.update()
            bar.set_postfix(failed=n_fail, refresh=False)

        if workers <= 1:
            for job in jobs:
                handle(*_worker(job))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for result in pool.imap_unordered(_worker, jobs, chunksize=1):
                    handle(*result)
        bar.close()
    took = time.perf_counter() - t0
    summary = PreprocessSummary(len(entries), done_before, n_ok, n_fail, took)
    logger.info("preprocess: %d clips done (%d before), %d failed, %.2f clips/s", n_ok, done_before, n_fail,
                summary.clips_per_second)
    return summary


# ---------------------------------------------------------------------------------------
# reading
@dataclass
class ClipWindow:
    """Frames ``[start, start + n)`` of a cached clip (``n`` may be shorter than asked at the end)."""

    mouth: np.ndarray | None  # (n, MOUTH_SIZE, MOUTH_SIZE, 3) uint8
    face: np.ndarray | None  # (n, FACE_SIZE, FACE_SIZE, 3) uint8
    valid: np.ndarray  # (n,) bool
    audio: np.ndarray | None  # (n * 640,) float32
    has_audio_frames: np.ndarray  # (n,) bool


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"unreadable cache info: {err}", path) from None
    if not isinstance(info, dict):
        raise DataFormatError("cache info must be a JSON object", path)
    return info


def _check_format(info: dict, where) -> None:
    fmt = info.get("format", 1)
    if not isinstance(fmt, int) or fmt > CACHE_FORMAT or info.get("crop_codec", "raw") not in CROP_CODECS:
        raise DataFormatError(f"cache format {fmt!r} (crop codec {info.get('crop_codec')!r}) is not one this avdetect "
                              f"{__version__} reads (formats 1-{CACHE_FORMAT}, codecs {', '.join(CROP_CODECS)}): "
                              "update avdetect or preprocess again into another folder", where)


class FeatureCache:
    """Read access to a preprocessing cache: ``records`` by manifest key, ``read`` windows.

    ``max_side`` (the decode size the caller's crops must come from, e.g.
    :data:`avdetect.vocab.DECODE_MAX_SIDE`) and ``model_config`` (a ``DetectorConfig`` or its
    ``VisualConfig``) are checked against what the cache recorded (:meth:`check`).
    """

    def __init__(self, cache_dir: str | Path, *, max_side: int | None = None, model_config=None):
        self.root = Path(cache_dir)
        if not (self.root / INDEX_NAME).is_file():
            raise DataFormatError(f"no {INDEX_NAME}: not a preprocessing cache (run avdetect preprocess)", self.root)
        self.records: dict[str, CacheRecord] = {}
        for d in _read_jsonl(self.root / INDEX_NAME):
            self.records[d["file"]] = CacheRecord(**d)
        info = self.root / INFO_NAME
        self.info = {**_LEGACY_SIZES, **_read_info(info)} if info.is_file() else {}
        _check_format(self.info, self.root)
        self.failures = {d["file"]: d.get("error", "") for d in _read_jsonl(self.root / FAILURES_NAME)}
        self.check(max_side=max_side, model_config=model_config)

    @property
    def max_side(self) -> int | None:
        """Decode size (longer side, pixels) the clips were cropped at; None if not recorded."""
        return self.info.get("max_side")

    @property
    def mouth_size(self) -> int | None:
        return self.info.get("mouth_size")

    @property
    def face_size(self) -> int | None:
        return self.info.get("face_size")

    def check(self, *, max_side: int | None = None, model_config=None) -> None:
        """Raise :class:`DataFormatError` (naming both values) if the cache was decoded at another
        size than ``max_side``, or holds crops of another size than ``model_config``'s visual
        ``input_mouth_size`` / ``input_face_size`` (the face size only for models with faces), or
        was face-tracked with another backend than the model's ``face_backend`` (its crops come
        from that backend: training crops and serving crops must agree)."""
        problems = []
        rule = crop_rule_problem(self.info)
        if rule:
            problems.append(rule)
        if max_side is not None and self.max_side is not None and int(max_side) != int(self.max_side):
            problems.append(f"decoded at max_side={self.max_side}, but max_side={max_side} was asked for")
        if model_config is not None:
            visual = getattr(model_config, "visual", model_config)
            if self.mouth_size is not None and visual.input_mouth_size != self.mouth_size:
                problems.append(f"mouth crops are {self.mouth_size} px, the model takes input_mouth_size="
                                f"{visual.input_mouth_size}")
            cached = self.info.get("backend")
            wanted = getattr(visual, "face_backend", None)
            if cached and wanted and str(cached) != str(wanted):
                problems.append(f"faces were tracked with {cached}, the model's crops come from {wanted}")
            if visual.use_face and self.has_faces and self.face_size is not None \
                    and visual.input_face_size != self.face_size:
                problems.append(f"face crops are {self.face_size} px, the model takes input_face_size="
                                f"{visual.input_face_size}")
        if problems:
            raise DataFormatError("cache does not match: " + "; ".join(problems) + " (preprocess again into another "
                                  "folder with matching settings)", self.root)

    def __contains__(self, file: str) -> bool:
        return file in self.records

    @property
    def has_faces(self) -> bool:
        return bool(self.info.get("faces"))

    def read(self, file: str, start: int = 0, stop: int | None = None, audio_shift: int = 0) -> ClipWindow:
        """Frames ``[start, stop)`` (clipped to the clip). ``audio_shift`` delays the audio by that
        many frames (audio at frame t comes from frame t - shift; zeros outside the clip)."""
        from safetensors import safe_open

        rec = self.records.get(file)
        if rec is None:
            raise DataFormatError(f"{file!r} is not in the cache", self.root)
        n = rec.n_frames
        start = max(0, start)
        stop = n if stop is None else min(n, stop)
        if stop <= start:
            raise DataFormatError(f"{file!r}: empty window [{start}, {stop}) of {n} frames", self.root)
        m = stop - start
        with safe_open(str(self.root / rec.shard), framework="numpy") as fh:
            keys = set(fh.keys())
            mouth, face = (self._crops(fh, keys, name, start, stop) for name in ("mouth", "face"))
            valid = fh.get_slice("valid")[start:stop].astype(bool) if "valid" in keys else np.zeros(m, bool)
            audio = None
            has_a = np.zeros(m, bool)
            if "audio" in keys:
                a0, a1 = start - audio_shift, stop - audio_shift  # source frames
                lo, hi = max(0, a0), min(n, a1)
                audio = np.zeros(frame_to_sample(m), np.float32)
                if hi > lo:
                    src = fh.get_slice("audio")[frame_to_sample(lo):frame_to_sample(hi)]
                    off = frame_to_sample(lo - a0)
                    audio[off:off + len(src)] = audio_from_int16(src)
                    has_a[lo - a0:hi - a0] = True
        for name, crops, size in (("mouth", mouth, self.mouth_size), ("face", face, self.face_size)):
            if crops is not None and size is not None and tuple(crops.shape[1:3]) != (size, size):
                raise DataFormatError(f"{file!r}: {name} crops are {crops.shape[1]}x{crops.shape[2]} px, but "
                                      f"cache_info.json says {size}", self.root)
        return ClipWindow(mouth, face, valid, audio, has_a)

    def _crops(self, fh, keys: set, name: str, start: int, stop: int) -> np.ndarray | None:
        """Crops ``[start, stop)`` of ``name``: a slice of the raw array (format 1), or the
        frames' lossless WebP images decoded (format 2)."""
        if name in keys:
            return fh.get_slice(name)[start:stop]
        if f"{name}.offsets" not in keys:
            return None
        off = fh.get_slice(f"{name}.offsets")[start:stop + 1]
        data = fh.get_slice(f"{name}.webp")[int(off[0]):int(off[-1])]
        try:
            return decode_crops(data, off)
        except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
            raise DataFormatError(f"cannot decode the {name} crops ({err}); "
                                  + ("this Pillow has no WebP support" if not _webp_available() else "damaged shard"),
                                  self.root) from None
