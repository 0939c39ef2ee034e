"""``avdetect.detect(path)`` and :class:`Detector`: a media file in, a :class:`DetectionReport` out.

    import avdetect
    report = avdetect.detect("clip.mp4")                 # default checkpoint, CPU or GPU
    report.verdict, report.fake_probability, report.segments

    det = avdetect.Detector.from_pretrained("checkpoints/avdetect-small-synth")   # load once
    for path in paths:
        det.detect(path).to_dict()

:meth:`Detector.detect` is a sequence of named stages, each in the module named after it; the
report's ``provenance.stage_seconds`` times them:

1. **inspect** -- :func:`avdetect.media.load_media` reads the container (no pixels decoded yet).
2. **sources** -- :func:`avdetect.sources.open_sources`: faces tracked window by window in a
   child process (:mod:`avdetect.faces.worker`, up to a minute of video ahead; it also runs the
   evidence stage once its windows are out) or, for a short file once the model is loaded, in a
   thread (:func:`resolve_prefetch`), audio decoded in chunks; memory does not grow with
   the video's length beyond a few hundred bytes per frame.
3. **windows** -- :func:`avdetect.inference.run_windows`: the model over overlapping windows,
   stitched into per-frame tracks, and the clip score (:func:`avdetect.inference.clip_score`, the
   report's ``fake_probability``: the same engine and score evaluation and calibration use).
4. **localise** -- :func:`avdetect.localization.localise`: ranked proposals per stream, and the
   segments whose frames look fake on average (``>= threshold``) flagged.
5. **evidence** -- :func:`avdetect.evidence.gather_evidence`: training-free forensics (the face
   worker's result, when it ran them).
6. **verdict** -- :func:`avdetect.verdict.judge`: the domain checks, the stream results and the
   verdict rule (:data:`avdetect.verdict.VERDICT_RULE`, recorded in every report).
7. **report** -- :mod:`avdetect.report.build`: thumbnails of flagged segments, provenance, the
   :class:`avdetect.report.DetectionReport`.

**Checkpoints** are folders (``model.safetensors`` + ``config.json``, optionally
``calibration.json``); a bare name such as ``"avdetect-small-synth"`` is looked up among the
shipped checkpoints (:func:`avdetect.checkpoints.resolve_checkpoint`).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from avdetect._process import usable_cores as _usable_cores
from avdetect._threads import BackgroundCall
from avdetect.checkpoints import read_calibration, resolve_checkpoint
from avdetect.domain import Domain
from avdetect.errors import ConfigError
from avdetect.inference import MIN_FACE_COVERAGE, WindowEngine, clip_score
from avdetect.localization import localise
from avdetect.media import Media, load_media, sha256_file
from avdetect.report.model import DetectionReport, QualityWarning, Segment
from avdetect.vocab import DECODE_MAX_SIDE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectOptions:
    """Parameters of one detection run (all recorded in the report's provenance).

    threshold: probability at or above which the file, a stream or a segment counts as fake.
    real_below: the verdict is ``real`` only when p(fake) is below this (None: below ``threshold``);
        between the two it is ``unknown`` ("the model cannot tell"). A checkpoint sets it in its
        calibration.json where real and forged dev clips overlap in score (a weak model).
    hop: frames between window starts (None: :func:`avdetect.inference.default_hop`, three quarters
        of the model's window, so neighbouring windows overlap by a quarter, which is cross-faded).
    max_side: longer side of decoded frames (faces are tracked and cropped at this size).
    min_face_coverage: below this fraction of frames with a face the visual verdict is "unknown".
    min_segment_score: proposals whose ranking confidence (localisation quality, see
        :mod:`avdetect.localization`) is below this are never flagged (default 0: a segment is
        flagged when its frames' mean fused p(fake) reaches ``threshold``; that mean is its score).
    min_segment_s: flagged segments are at least this long (shorter blips are model noise).
    merge_gap_s: flagged segments closer than this are reported as one.
    max_segments: at most this many flagged segments (best first).
    face_backend: face detector backend name; None (default): the one the checkpoint's crops were
        made with (``config.visual.face_backend``: training crops and serving crops agree), or
        ``opencv`` with a warning when that one is not installed here.
    thumbnails: decode one face thumbnail per flagged segment.
    forensics: run the training-free evidence (:func:`avdetect.forensics.analyze`).
    audio_chunk_s: seconds of audio decoded at a time.
    prefetch: where faces are tracked while the model runs: ``"process"`` (a child process,
        beside the model on another core), ``"thread"``, ``"none"`` (in line) or ``"auto"``
        (default: the process while the model is still loading or for a file of at least
        :data:`AUTO_PROCESS_MIN_S`, a thread otherwise; :func:`resolve_prefetch`); the results
        are the same (:func:`avdetect.sources._face_chunks`), and the report's parameters name
        the mode used.
    threads: torch CPU threads for the model, set when a detection starts, and one more once a
        face worker process has finished its work while windows remain (its core is then free),
        where the machine has that core (None: leave torch's setting; the command line passes
        :func:`default_threads`).
    """

    threshold: float = 0.5
    real_below: float | None = None
    hop: int | None = None
    max_side: int = DECODE_MAX_SIDE
    min_face_coverage: float = MIN_FACE_COVERAGE
    min_segment_score: float = 0.0
    min_segment_s: float = 0.2
    merge_gap_s: float = 0.24
    max_segments: int = 20
    face_backend: str | None = None
    thumbnails: bool = True
    forensics: bool = True
    audio_chunk_s: float = 60.0
    prefetch: str = "auto"
    threads: int | None = None

    def validate(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.real_below is not None and not 0.0 < self.real_below < 1.0:
            raise ConfigError(f"real_below must be in (0, 1), got {self.real_below}")
        if self.hop is not None and self.hop < 1:
            raise ConfigError(f"hop must be >= 1 frame, got {self.hop}")
        if self.max_side < 64:
            raise ConfigError(f"max_side must be >= 64 pixels, got {self.max_side}")
        from avdetect.sources import PREFETCH_MODES

        if self.prefetch != "auto" and self.prefetch not in PREFETCH_MODES:
            raise ConfigError(f"prefetch must be auto or one of {', '.join(PREFETCH_MODES)}, got {self.prefetch!r}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError(f"threads must be 1..1024, got {self.threads}")
        if self.audio_chunk_s < 1.0:
            raise ConfigError(f"audio_chunk_s must be >= 1 s, got {self.audio_chunk_s}")


#: Most torch threads :func:`default_threads` gives (more do not help a model this size).
MAX_DEFAULT_THREADS = 8

#: ``prefetch="auto"`` with the model loaded: files at least this long (seconds) have their faces
#: tracked in a child process, shorter ones in a thread. The child is a fresh interpreter (about
#: 0.5 CPU-s and 0.3 s before its first window) that only a longer file's tracking beside the
#: model repays: with the model loaded, on 2 cores, a thread was faster up to about 30 s of a
#: 512-px video and the process beyond (at 1080p the crossover lies nearer 60 s; README, measured).
AUTO_PROCESS_MIN_S = 30.0


def resolve_prefetch(prefetch: str, duration_s: float, model_loading: bool, cores: int) -> str:
    """The face tracking mode :class:`DetectOptions` ``prefetch`` means for one file: itself,
    unless ``"auto"``, which is ``"process"`` where a second core exists and either the model is
    still loading (the command line's first file: the child tracks faces while this process
    imports torch) or the file lasts at least :data:`AUTO_PROCESS_MIN_S`; ``"thread"``
    otherwise."""
    if prefetch != "auto":
        return prefetch
    if cores >= 2 and (model_loading or duration_s >= AUTO_PROCESS_MIN_S):
        return "process"
    return "thread"


def default_threads() -> int:
    """Torch threads for the model on this machine now: the cores this process may use, less
    one for the face tracker's process and less those the load average says are busy, between
    1 and :data:`MAX_DEFAULT_THREADS`. On a 2-core machine that is 1 (measured: torch's default
    of 2 there fights the face tracker and ffmpeg, and on a busy machine ran the model 8x slower)."""
    cores = _usable_cores()
    try:
        busy = int(os.getloadavg()[0])
    except OSError:  # load average not available
        busy = 0
    return max(1, min(MAX_DEFAULT_THREADS, cores - 1 - busy))


class _StageClock:
    """Seconds per named stage (the report's ``stage_seconds``)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def _sha256_or_none(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "none"


class _BackgroundLoad(BackgroundCall):
    """``AVDetector.from_pretrained`` in a thread (importing torch takes seconds of one core: face
    tracking, in its own process, starts meanwhile); :meth:`result` waits for it and raises what
    the load raised."""

    def __init__(self, path: Path, device: str | None):
        super().__init__(_load_model, path, device, name="avdetect-load")


def _load_model(path: Path, device: str | None) -> tuple:
    with _first_torch_import():
        import torch

        from avdetect.models import AVDetector

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return AVDetector.from_pretrained(path, map_location=device, inference_only=True), device


@contextmanager
def _first_torch_import():
    """Python's cyclic garbage collector paused while this process imports torch, and the objects
    alive then moved to its permanent generation (``gc.freeze``, what servers do once started):
    the import creates about a million objects that live as long as the process, and the full
    collections it set off, each scanning all of them, took 0.4 s of a cold detect (measured:
    the model load 2.3 -> 2.0 s, medians of 5 cold processes). Once per process: where torch is
    already imported this does nothing (repeated loads freeze nothing more)."""
    import gc
    import sys

    if "torch" in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class Detector:
    """A loaded model plus detection options: load once with :meth:`from_pretrained`, call
    :meth:`detect` on many files."""

    def __init__(self, model, checkpoint: str | Path = "(in memory)", device: str | None = None,
                 options: DetectOptions | None = None, weights_sha256: str | None = None,
                 checkpoint_warning: str | None = None, domain: Domain | None = None, config=None):
        self.checkpoint_warning = checkpoint_warning  # carried into every report's warnings
        self.domain = domain or Domain()  # what the checkpoint's training covered (verdict rule)
        self._loading = model if isinstance(model, _BackgroundLoad) else None
        self._model = self._device = None
        if self._loading is None:
            import torch

            self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = model.to(self._device).eval()
            config = model.config
        self.config = config  # the model's DetectorConfig, known before a background load ends
        self.checkpoint = str(checkpoint)
        self.options = options or DetectOptions()
        self.options.validate()
        if weights_sha256 is None:
            p = Path(checkpoint)
            weights_sha256 = _sha256_or_none(p / "model.safetensors" if p.is_dir() else p)
        self.weights_sha256 = weights_sha256

    @property
    def loading(self) -> bool:
        """True while a background load (``from_pretrained(background=True)``) is still running."""
        return self._model is None and self._loading is not None and not self._loading.done()

    def _wait(self) -> None:
        if self._model is None:
            model, self._device = self._loading.result()
            self._model = model.eval()

    @property
    def model(self):
        """The :class:`~avdetect.models.AVDetector` (waits for a background load to end)."""
        self._wait()
        return self._model

    @property
    def device(self) -> str:
        self._wait()
        return self._device

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path | None = None, device: str | None = None,
                        options: DetectOptions | None = None, background: bool = False,
                        **option_overrides) -> Detector:
        """Load a checkpoint folder (``model.safetensors`` + ``config.json``), or a shipped
        checkpoint by name (e.g. ``"avdetect-small-synth"``, see :func:`resolve_checkpoint`); None:
        the default. Its ``calibration.json`` (:func:`read_calibration`) sets the threshold, the
        caveat and the :class:`~avdetect.domain.Domain` the verdict rule checks files against.

        ``background=True`` returns at once, the weights loading in a thread (the command line
        does this: the first file's faces are tracked meanwhile); a broken checkpoint then
        raises on the first use of :attr:`model` (the first :meth:`detect`). The config, the
        calibration and the options are checked at once either way.

        Raises :class:`CheckpointNotFoundError` when the folder is missing (for the default
        checkpoint, with how to get it) and :class:`CheckpointError` for broken checkpoints.
        """
        from avdetect.models.config import read_checkpoint_config

        path = resolve_checkpoint(checkpoint)
        folder = path.parent if path.is_file() else path
        config = read_checkpoint_config(folder)
        opts = options or DetectOptions()
        calibration = read_calibration(folder)
        if options is None and "threshold" not in option_overrides and calibration is not None:
            opts = replace(opts, threshold=calibration["threshold"],  # the checkpoint's operating point
                           real_below=calibration.get("real_below"))
        if option_overrides:
            opts = replace(opts, **option_overrides)
        opts.validate()
        if background:
            model = _BackgroundLoad(path, device)
        else:
            model, device = _load_model(path, device)
        return cls(model, checkpoint=folder, device=device, options=opts,
                   weights_sha256=_sha256_or_none(folder / "model.safetensors"),
                   checkpoint_warning=calibration["warning"] if calibration else None,
                   domain=calibration["domain"] if calibration else None, config=config)

    def _face_backend(self, opts: DetectOptions) -> tuple[str, str | None]:
        """The face backend to use and, when it is not the checkpoint's, why (a report warning)."""
        trained = str(getattr(self.config.visual, "face_backend", "opencv"))
        if opts.face_backend is not None:
            from avdetect.faces import resolve_backend_name

            chosen = resolve_backend_name(opts.face_backend)
            note = None if chosen == trained else (
                f"faces tracked with {chosen}, but this checkpoint was trained on {trained} crops: its scores are "
                "less reliable")
            return chosen, note
        from avdetect.faces import backend_available

        if backend_available(trained):
            return trained, None
        return "opencv", (f"this checkpoint was trained on {trained} crops, but {trained} is not installed here: "
                          "faces were tracked with opencv and its scores are less reliable")

    def detect(self, path: str | os.PathLike, quiet: bool = True, *, media: Media | None = None,
               **option_overrides) -> DetectionReport:
        """Detect and localise manipulations in one file (the stages of the module docstring).
        Options override :attr:`options`. ``media``: ``path`` already opened with
        :func:`~avdetect.media.load_media` (then it is not inspected again).

        Raises :class:`avdetect.errors.MediaError` subclasses for unreadable input.
        """
        from tqdm import tqdm

        from avdetect.evidence import gather_evidence
        from avdetect.report.build import build_report, provenance, thumbnails
        from avdetect.sources import open_sources
        from avdetect.verdict import VERDICT_RULE, faces_seen, judge, quality_warnings

        opts = replace(self.options, **option_overrides) if option_overrides else self.options
        opts.validate()
        started = _dt.datetime.now(_dt.timezone.utc)
        t_start = time.perf_counter()
        clock = _StageClock()
        with clock("inspect"):
            media = media.at_max_side(opts.max_side) if media is not None else load_media(path, max_side=opts.max_side)
        media.hash_ahead()  # the provenance's file hash, beside the analysis instead of after it
        backend, backend_note = self._face_backend(opts)
        opts = replace(opts, prefetch=resolve_prefetch(opts.prefetch, media.duration, self.loading, _usable_cores()))
        with open_sources(media, self.config, replace(opts, face_backend=backend)) as src:
            with clock("load"):  # a background load's rest (0 once loaded): faces are tracked meanwhile
                model = self.model
            spare = False  # a core to take once the face worker has finished
            if opts.threads is not None:
                import torch

                torch.set_num_threads(opts.threads)
                spare = opts.prefetch == "process" and opts.threads < _usable_cores()
            engine = WindowEngine(model, src.n_frames, hop=opts.hop, device=self.device)
            with tqdm(total=src.n_frames, unit="frame", desc=Path(media.info.path).name[:30], disable=quiet,
                      leave=False) as bar:
                for window in src.windows(engine.starts(), engine.window, progress=bar.update):
                    if spare and src.worker_finished():
                        torch.set_num_threads(opts.threads + 1)
                        spare = False
                    engine.add(window)
                result = engine.result()
            clock.seconds.update(model=result.model_seconds, **src.stage_seconds())
            with clock("localisation"):
                score = clip_score(result, result.visual_present, result.audio_present, opts.min_face_coverage)
                loc = localise(result.tracks, result.visual_present, result.audio_present, opts)
                segments = [Segment(**asdict(s)) for s in loc.segments]
            vmask = result.visual_present
            coverage = float(vmask.mean()) if vmask is not None else 0.0
            visual_ok = score.visual is not None
            warnings = quality_warnings(media.info, coverage, visual_ok, src.faces.last_track if src.faces else None)
            if self.checkpoint_warning:
                warnings.insert(0, QualityWarning("checkpoint_domain", self.checkpoint_warning))
            if backend_note:
                warnings.append(QualityWarning("face_backend", backend_note))
            faces_info, faces_note = faces_seen(src.faces.last_track if src.faces else None,
                                                src.faces.track_ids if src.faces else None)
            if faces_note is not None:
                warnings.append(faces_note)
            with clock("forensics"):
                evidence, forensics = gather_evidence(media, src, opts.forensics, warnings)
        # the sources close here: a face worker process ran the evidence stage and is done
        with clock("domain"):
            facts = src.domain_facts()
            verdict = judge(score, opts.threshold, opts.real_below, segments, evidence, facts, self.domain,
                            src.has_video, src.has_audio, coverage, visual_ok)
        clock.seconds["domain"] += src.meter_seconds  # measured while windows passed
        with clock("thumbnails"):
            thumbs = thumbnails(media, verdict.segments, vmask, src.faces.boxes, src.faces.stills) if (
                opts.thumbnails and src.has_video) else []
        params = {**asdict(opts), "face_backend": backend, "hop": engine.hop, "window_frames": engine.window,
                  "proposal_config": asdict(loc.config)}
        prov = provenance(media, self, params, started.isoformat(timespec="seconds"), time.perf_counter() - t_start,
                          clock.seconds)
        report = build_report(path, src, result, score, loc, verdict, evidence, forensics, warnings, thumbs, prov,
                              opts.threshold, VERDICT_RULE,
                              extra={"domain": {"checkpoint": self.domain.to_dict(), "measured": facts.to_dict()},
                                     **({"faces": faces_info} if faces_info is not None else {})})
        log.info("%s", report.summary())
        return report


def detect(path: str | os.PathLike, checkpoint: str | Path | None = None, device: str | None = None,
           quiet: bool = True, **options) -> DetectionReport:
    """Detect and localise audio-visual manipulations in ``path``; see :class:`DetectOptions`.

    Loads the checkpoint on each call: for many files use :meth:`Detector.from_pretrained` once.
    """
    return Detector.from_pretrained(checkpoint, device=device, background=True).detect(path, quiet=quiet, **options)
