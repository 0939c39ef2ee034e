"""From per-frame scores to ranked, time-stamped segment proposals.

Input: score tracks on the 25 fps frame grid (:mod:`avdetect.timegrid`), one per modality
(visual, audio, fused), each holding

* ``frame`` (T,) -- probability that frame t is manipulated;
* optionally ``start`` / ``end`` (T,) -- probability that a manipulated segment begins at the
  start of frame t / ends at the end of frame t (boundary heads);
* optionally ``start_dist`` / ``end_dist`` (T,) -- anchor-free regressions (ActionFormer
  style): distance, in frames, from the centre of frame t back to the start edge and forward
  to the end edge of the segment frame t belongs to.

Output: an (n, 3) float64 array of ``[confidence, start_s, end_s]`` rows, sorted by
confidence, at most ``max_proposals`` rows: the format of the AV-Deepfake1M challenge and the
input of :mod:`avdetect.metrics`.

How proposals are made (:func:`propose`), in frame-edge units (frame t spans [t, t + 1)):

1. **Threshold runs.** For each threshold in ``thresholds`` the maximal runs of frames with
   score >= threshold become candidates, once as they are and once with gaps of at most
   ``merge_gap`` frames bridged (a detector's score dips for a frame or two inside a fake).
   Several thresholds give nested candidates of different tightness, which soft-NMS ranks.
2. **Boundary peak pairs.** Local maxima of the start and end tracks above ``peak_threshold``
   (at most ``max_peaks`` each) are paired, every start peak with every end peak at or after
   it (up to ``max_frames`` long). This recovers segments whose inside score is weak or that
   touch another segment, which runs alone would merge.
3. **Distance regressions.** Every frame whose score is at least the lowest threshold votes for
   the segment ``[t + 0.5 - start_dist, t + 0.5 + end_dist]``.

Each candidate ``[s, e)`` gets
``confidence = mean(frame[s:e]) * (1 - mean(frame[context])) * sqrt(b_start * b_end)``:
the inside evidence; a completeness term, where the context is ``context_ratio * (e - s)``
frames (at least 1) on each side, so that a piece of a longer fake, whose surroundings also
look fake, ranks below the whole; and the geometric mean of the boundary evidence, ``b_start``
/ ``b_end`` being the largest start / end boundary scores within ``boundary_radius`` frames of
its edges (both 1 when there are no boundary tracks). Exact duplicates are
collapsed, the best ``pre_nms_top`` are kept, and soft-NMS (:func:`soft_nms`, Gaussian by
default, or linear) decays the scores of candidates that overlap a better one and keeps at
most ``max_proposals``. Edges are clipped to the track and converted to seconds.

Long videos are processed by the models in overlapping windows; :class:`TrackStitcher` merges
the windows' score tracks into one track for the whole video (a weighted average that trusts
each window least at its edges) before proposals are made, so a segment that crosses a
window boundary is proposed once, whole; memory stays at a few floats per frame. When only
per-window proposal lists exist, :func:`merge_window_proposals` shifts them to video time and
runs soft-NMS over the pool.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from avdetect.metrics import iou_1d
from avdetect.timegrid import frames_to_seconds

logger = logging.getLogger(__name__)

NMS_METHODS = ("gaussian", "linear", "hard", "none")


def _to_numpy(x, name: str) -> np.ndarray | None:
    """Accept numpy arrays, lists and torch tensors (without importing torch) -> 1-D float64."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D per-frame track, got shape {a.shape}")
    return a


@dataclass
class ScoreTrack:
    """Per-frame scores of one modality on the 25 fps grid (see module docstring)."""

    frame: np.ndarray  # (T,)
    start: np.ndarray | None = None  # (T,)
    end: np.ndarray | None = None  # (T,)
    start_dist: np.ndarray | None = None  # (T,) frames
    end_dist: np.ndarray | None = None  # (T,) frames

    def __post_init__(self) -> None:
        self.frame = _to_numpy(self.frame, "frame")
        n = len(self.frame)
        for name in ("start", "end", "start_dist", "end_dist"):
            a = _to_numpy(getattr(self, name), name)
            if a is not None and len(a) != n:
                raise ValueError(f"{name} has {len(a)} frames, frame scores have {n}")
            setattr(self, name, a)
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end boundary scores, or neither")
        if (self.start_dist is None) != (self.end_dist is None):
            raise ValueError("give both start_dist and end_dist, or neither")

    @property
    def n_frames(self) -> int:
        return len(self.frame)

    def fields(self) -> dict[str, np.ndarray]:
        """The tracks that are present, by name."""
        return {k: getattr(self, k) for k in ("frame", "start", "end", "start_dist", "end_dist") if getattr(self, k) is not None}


@dataclass(frozen=True)
class ProposalConfig:
    """Knobs of :func:`propose` (defaults suit LAV-DF / AV-Deepfake1M-like segments)."""

    thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    merge_gap: int = 2  # frames of sub-threshold gap bridged in the second run pass
    min_frames: int = 1  # shortest candidate kept
    max_frames: int | None = None  # longest candidate kept (None: no limit)
    peak_threshold: float = 0.2  # boundary peaks below this are ignored
    max_peaks: int = 32  # per boundary track
    boundary_radius: int = 2  # frames around an edge searched for its boundary score
    context_ratio: float = 0.25  # context each side, as a fraction of the candidate's length
    use_boundaries: bool = True
    use_distances: bool = True
    pre_nms_top: int = 2000
    nms: str = "gaussian"
    sigma: float = 0.5  # Gaussian soft-NMS: score *= exp(-iou^2 / sigma)
    iou_threshold: float = 0.5  # linear / hard NMS: decay only above this IoU
    min_score: float = 1e-3  # candidates decayed below this are dropped
    max_proposals: int = 100

    def __post_init__(self) -> None:
        if self.nms not in NMS_METHODS:
            raise ValueError(f"nms must be one of {NMS_METHODS}, got {self.nms!r}")
        if self.max_proposals < 1:
            raise ValueError("max_proposals must be >= 1")
        if not self.thresholds:
            raise ValueError("at least one threshold is needed")


# ---------------------------------------------------------------------------------------
# candidate sources (frame-edge units: a candidate [s, e) covers frames s .. e-1)
def threshold_runs(scores: np.ndarray, threshold: float, merge_gap: int = 0) -> np.ndarray:
    """Maximal runs of ``scores >= threshold`` as an (n, 2) int array of ``[start, end)``.

    Runs separated by at most ``merge_gap`` frames below the threshold are joined.
    """
    above = np.asarray(scores) >= threshold
    if not above.any():
        return np.zeros((0, 2), dtype=np.int64)
    padded = np.concatenate([[False], above, [False]])
    change = np.flatnonzero(padded[1:] != padded[:-1])
    runs = change.reshape(-1, 2)  # [start, end)
    if merge_gap > 0 and len(runs) > 1:
        gaps = runs[1:, 0] - runs[:-1, 1]
        new_group = np.concatenate([[True], gaps > merge_gap])
        group = np.cumsum(new_group) - 1
        starts = runs[new_group, 0]
        ends = np.zeros(group[-1] + 1, dtype=np.int64)
        np.maximum.at(ends, group, runs[:, 1])
        runs = np.column_stack([starts, ends])
    return runs.astype(np.int64)


def find_peaks(x: np.ndarray, threshold: float, max_peaks: int) -> np.ndarray:
    """Indices of local maxima of ``x`` (>= both neighbours, > threshold), best ``max_peaks`` first.

    On a plateau only its first frame counts.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    left = np.concatenate([[-np.inf], x[:-1]])
    right = np.concatenate([x[1:], [-np.inf]])
    idx = np.flatnonzero((x > left) & (x >= right) & (x > threshold))
    order = np.argsort(-x[idx], kind="stable")[:max_peaks]
    return idx[order]


def _boundary_confidence(track: np.ndarray, edges: np.ndarray, radius: int) -> np.ndarray:
    """Max of ``track`` within ``radius`` frames of each edge index (clipped to the track)."""
    n = len(track)
    offsets = np.arange(-radius, radius + 1)
    idx = np.clip(edges[:, None] + offsets[None, :], 0, n - 1)
    return track[idx].max(axis=1)


def _score_candidates(track: ScoreTrack, seg: np.ndarray, cfg: ProposalConfig) -> np.ndarray:
    """Confidence of integer candidates [s, e) (see module docstring)."""
    n = track.n_frames
    csum = np.concatenate([[0.0], np.cumsum(track.frame)])
    length = seg[:, 1] - seg[:, 0]
    inside = (csum[seg[:, 1]] - csum[seg[:, 0]]) / length
    # Completeness: the frames just outside should look real, else the candidate is a piece of
    # a longer segment. Context of context_ratio * length frames (>= 1) on each side.
    ctx = np.maximum(1, np.round(cfg.context_ratio * length)).astype(np.int64)
    lo, hi = np.maximum(seg[:, 0] - ctx, 0), np.minimum(seg[:, 1] + ctx, n)
    ctx_sum = (csum[seg[:, 0]] - csum[lo]) + (csum[hi] - csum[seg[:, 1]])
    ctx_len = (seg[:, 0] - lo) + (hi - seg[:, 1])
    outside = np.where(ctx_len > 0, ctx_sum / np.maximum(ctx_len, 1), 0.0)
    inside = inside * np.clip(1.0 - outside, 0.0, 1.0)
    if cfg.use_boundaries and track.start is not None:
        bs = _boundary_confidence(track.start, seg[:, 0], cfg.boundary_radius)
        be = _boundary_confidence(track.end, seg[:, 1] - 1, cfg.boundary_radius)
        inside = inside * np.sqrt(np.clip(bs, 0, None) * np.clip(be, 0, None))
    return inside


def candidates(track: ScoreTrack, config: ProposalConfig | None = None) -> np.ndarray:
    """All candidate segments of a track, scored: (n, 3) ``[confidence, start, end]`` in frames.

    Duplicates are collapsed; the rows are not sorted and not suppressed yet.
    """
    cfg = config or ProposalConfig()
    n = track.n_frames
    if n == 0:
        return np.zeros((0, 3))
    segs = []
    for t in cfg.thresholds:
        segs.append(threshold_runs(track.frame, t, 0))
        if cfg.merge_gap > 0:
            segs.append(threshold_runs(track.frame, t, cfg.merge_gap))
    if cfg.use_boundaries and track.start is not None:
        sp = find_peaks(track.start, cfg.peak_threshold, cfg.max_peaks)
        ep = find_peaks(track.end, cfg.peak_threshold, cfg.max_peaks)
        if len(sp) and len(ep):
            s, e = np.meshgrid(sp, ep, indexing="ij")
            ok = e >= s  # end frame at or after the start frame
            segs.append(np.column_stack([s[ok], e[ok] + 1]))
    seg = np.concatenate(segs) if segs else np.zeros((0, 2), dtype=np.int64)
    seg = np.unique(seg.astype(np.int64), axis=0) if len(seg) else seg.astype(np.int64)
    length = seg[:, 1] - seg[:, 0]
    keep = length >= max(cfg.min_frames, 1)
    if cfg.max_frames is not None:
        keep &= length <= cfg.max_frames
    seg = seg[keep]
    out = [np.column_stack([_score_candidates(track, seg, cfg), seg.astype(np.float64)])] if len(seg) else []

    if cfg.use_distances and track.start_dist is not None:
        voters = np.flatnonzero(track.frame >= min(cfg.thresholds))
        if len(voters):
            centre = voters + 0.5
            s = np.clip(centre - np.maximum(track.start_dist[voters], 0.5), 0, n)
            e = np.clip(centre + np.maximum(track.end_dist[voters], 0.5), 0, n)
            # Score a regressed segment like the others, on the frames it covers.
            s_i = np.clip(np.floor(s).astype(np.int64), 0, n - 1)
            e_i = np.clip(np.ceil(e).astype(np.int64), s_i + 1, n)
            conf = _score_candidates(track, np.column_stack([s_i, e_i]), cfg)
            length = e - s
            ok = length >= max(cfg.min_frames, 1) - 1e-9
            if cfg.max_frames is not None:
                ok &= length <= cfg.max_frames
            reg = np.column_stack([conf, s, e])[ok]
            # Many frames vote for (almost) the same segment: keep one per rounded segment.
            key = np.round(reg[:, 1:] * 4) / 4
            order = np.lexsort((-reg[:, 0], key[:, 1], key[:, 0]))
            reg, key = reg[order], key[order]
            first = np.ones(len(reg), dtype=bool)
            first[1:] = np.any(key[1:] != key[:-1], axis=1)
            out.append(reg[first])
    return np.concatenate(out) if out else np.zeros((0, 3))


# ---------------------------------------------------------------------------------------
# soft-NMS
def soft_nms(
    proposals: np.ndarray,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.5,
    min_score: float = 1e-3,
    max_keep: int = 100,
) -> np.ndarray:
    """Soft non-maximum suppression of 1-D segments ``[score, start, end]`` (any time unit).

    Repeatedly takes the best remaining segment and decays the others by their IoU ``o`` with
    it: ``gaussian``: ``score *= exp(-o^2 / sigma)``; ``linear``: ``score *= 1 - o`` when
    ``o > iou_threshold``; ``hard``: ``score = 0`` when ``o > iou_threshold`` (classic NMS);
    ``none``: no decay. Segments whose score falls below ``min_score`` are dropped; at most
    ``max_keep`` are returned, best first, with their decayed scores.
    """
    if method not in NMS_METHODS:
        raise ValueError(f"method must be one of {NMS_METHODS}, got {method!r}")
    p = np.asarray(proposals, dtype=np.float64).reshape(-1, 3)
    if method == "none":
        order = np.argsort(-p[:, 0], kind="stable")
        kept = p[order]
        return kept[kept[:, 0] >= min_score][:max_keep]
    scores = p[:, 0].copy()
    segs = p[:, 1:]
    alive = scores >= min_score
    out = []
    while len(out) < max_keep and alive.any():
        idx = np.flatnonzero(alive)
        best = idx[np.argmax(scores[idx])]  # first of equals: stable
        out.append((scores[best], segs[best, 0], segs[best, 1]))
        alive[best] = False
        rest = np.flatnonzero(alive)
        if not len(rest):
            break
        iou = iou_1d(segs[best][None], segs[rest], dtype=np.float64)[0]
        if method == "gaussian":
            scores[rest] *= np.exp(-(iou**2) / sigma)
        elif method == "linear":
            scores[rest] = np.where(iou > iou_threshold, scores[rest] * (1.0 - iou), scores[rest])
        else:  # hard
            scores[rest] = np.where(iou > iou_threshold, 0.0, scores[rest])
        alive[rest] = scores[rest] >= min_score
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


# ---------------------------------------------------------------------------------------
# public entry points
def propose(track: ScoreTrack, config: ProposalConfig | None = None) -> np.ndarray:
    """Ranked segment proposals of one track: (n, 3) ``[confidence, start_s, end_s]``."""
    cfg = config or ProposalConfig()
    cand = candidates(track, cfg)
    if len(cand) > cfg.pre_nms_top:
        cand = cand[np.argsort(-cand[:, 0], kind="stable")[: cfg.pre_nms_top]]
    kept = soft_nms(cand, cfg.nms, cfg.sigma, cfg.iou_threshold, cfg.min_score, cfg.max_proposals)
    logger.debug("%d candidates -> %d proposals", len(cand), len(kept))
    kept[:, 1:] = np.clip(kept[:, 1:], 0, track.n_frames)
    return np.column_stack([kept[:, 0], frames_to_seconds(kept[:, 1]), frames_to_seconds(kept[:, 2])])


def fuse_tracks(visual: ScoreTrack, audio: ScoreTrack, mode: str = "max") -> ScoreTrack:
    """A fused track from the two modalities: element-wise ``max`` (fake if either is) or ``mean``.

    Used when the model has no fused head of its own. Distances are taken from the modality
    with the higher frame score at each frame.
    """
    if visual.n_frames != audio.n_frames:
        raise ValueError(f"visual track has {visual.n_frames} frames, audio {audio.n_frames}")
    if mode not in ("max", "mean"):
        raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
    comb = np.maximum if mode == "max" else (lambda a, b: (a + b) / 2.0)
    kw = {"frame": comb(visual.frame, audio.frame)}
    if visual.start is not None and audio.start is not None:
        kw["start"], kw["end"] = comb(visual.start, audio.start), comb(visual.end, audio.end)
    if visual.start_dist is not None and audio.start_dist is not None:
        pick_v = visual.frame >= audio.frame
        kw["start_dist"] = np.where(pick_v, visual.start_dist, audio.start_dist)
        kw["end_dist"] = np.where(pick_v, visual.end_dist, audio.end_dist)
    return ScoreTrack(**kw)


def propose_modalities(tracks: Mapping[str, ScoreTrack], config: ProposalConfig | None = None) -> dict[str, np.ndarray]:
    """Proposals per modality (``visual``, ``audio``, ``fused``...), one call per track.

    When ``visual`` and ``audio`` are given without ``fused``, a fused track is made with
    :func:`fuse_tracks` (``max``).
    """
    tracks = dict(tracks)
    if "fused" not in tracks and "visual" in tracks and "audio" in tracks:
        tracks["fused"] = fuse_tracks(tracks["visual"], tracks["audio"])
    return {name: propose(t, config) for name, t in tracks.items()}


# ---------------------------------------------------------------------------------------
# windows
def window_weights(length: int, taper: int) -> np.ndarray:
    """Weights of a window's frames: linear ramps of ``taper`` frames at both ends, 1 inside.

    Never zero, so a frame seen by one window only keeps that window's value.
    """
    w = np.ones(length)
    if taper > 0 and length > 0:
        ramp = (np.arange(min(taper, length)) + 1.0) / (taper + 1.0)
        w[: len(ramp)] = np.minimum(w[: len(ramp)], ramp)
        w[length - len(ramp):] = np.minimum(w[length - len(ramp):], ramp[::-1])
    return w


@dataclass
class TrackStitcher:
    """Merge the score tracks of overlapping inference windows into one track per video.

    ``add(offset, track)`` for each window (offset = index of its first frame); ``result()``
    returns the weighted average per frame, each window's frames weighted by
    :func:`window_weights` so that a window's edges (where its context is cut) count less
    than its centre. Memory is a few float arrays of the video's length.
    """

    n_frames: int
    taper: int = 25
    _sums: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    _weight: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._weight = np.zeros(self.n_frames)

    def add(self, offset: int, track: ScoreTrack) -> None:
        if offset < 0 or offset + track.n_frames > self.n_frames:
            raise ValueError(f"window [{offset}, {offset + track.n_frames}) is outside the video's {self.n_frames} frames")
        w = window_weights(track.n_frames, self.taper)
        sl = slice(offset, offset + track.n_frames)
        present = track.fields()
        if self._sums and set(present) != set(self._sums):
            raise ValueError(f"window at {offset} has tracks {sorted(present)}, earlier windows {sorted(self._sums)}")
        for name, values in present.items():
            acc = self._sums.setdefault(name, np.zeros(self.n_frames))
            acc[sl] += w * values
        self._weight[sl] += w

    def result(self) -> ScoreTrack:
        if not self._sums:
            raise ValueError("no window was added")
        uncovered = self._weight == 0
        if uncovered.any():
            first = int(np.flatnonzero(uncovered)[0])
            raise ValueError(f"{int(uncovered.sum())} frames are covered by no window (first: frame {first})")
        return ScoreTrack(**{k: v / self._weight for k, v in self._sums.items()})


def propose_windows(
    windows: list[tuple[int, ScoreTrack]], n_frames: int, config: ProposalConfig | None = None, taper: int = 25
) -> np.ndarray:
    """Proposals for a whole video from its windows' tracks: stitch (:class:`TrackStitcher`), then :func:`propose`."""
    stitcher = TrackStitcher(n_frames, taper=taper)
    for offset, track in windows:
        stitcher.add(offset, track)
    return propose(stitcher.result(), config)



def merge_window_proposals(
    windows: list[tuple[float, np.ndarray]], config: ProposalConfig | None = None
) -> np.ndarray:
    """Merge proposal lists made per window when the score tracks are no longer available.

    ``windows`` holds ``(offset_s, proposals)`` with proposals ``[confidence, start_s, end_s]``
    relative to the window's start. They are shifted to video time, pooled, and soft-NMS runs
    once more over the pool, so that a segment seen by two overlapping windows is reported once
    with the better score, and the cap applies to the whole video. Prefer stitching the tracks
    (:func:`propose_windows`): a segment cut by a window edge is then proposed whole.
    """
    cfg = config or ProposalConfig()
    pooled = [np.asarray(p, dtype=np.float64).reshape(-1, 3) + np.array([0.0, off, off]) for off, p in windows]
    allp = np.concatenate(pooled) if pooled else np.zeros((0, 3))
    return soft_nms(allp, cfg.nms, cfg.sigma, cfg.iou_threshold, cfg.min_score, cfg.max_proposals)


# ---------------------------------------------------------------------------------------
# the localise stage of detect: tracks -> proposals per stream and flagged segments
@dataclass(frozen=True)
class FlaggedSegment:
    """A segment detect flags (seconds; scores are mean per-frame p(fake) over its frames)."""

    start_s: float
    end_s: float
    score: float  # mean fused p(fake)
    modality: str  # visual | audio | audio-visual
    visual_score: float | None  # mean visual p(fake) over its frames with a face (None: no face)
    audio_score: float | None  # mean audio p(fake) over its frames with audio (None: no audio)


@dataclass
class Localisation:
    """What :func:`localise` found: ranked ``proposals`` per stream (``fused`` always, ``visual``
    when a face was seen, ``audio`` when there is audio) and the ``segments`` flagged, best first."""

    proposals: dict[str, np.ndarray]
    segments: list[FlaggedSegment]
    config: ProposalConfig


def _masked(track: ScoreTrack, mask: np.ndarray) -> ScoreTrack:
    return ScoreTrack(frame=np.where(mask, track.frame, 0.0), start=track.start, end=track.end,
                      start_dist=track.start_dist, end_dist=track.end_dist)


def localise(tracks: Mapping[str, ScoreTrack], visual_present: np.ndarray | None, audio_present: np.ndarray | None,
             rule, config: ProposalConfig | None = None) -> Localisation:
    """Proposals of the stitched tracks (each masked to the frames where its stream is present)
    and the segments :func:`flag_segments` flags under ``rule`` (an object with ``threshold``,
    ``min_segment_score``, ``min_segment_s``, ``merge_gap_s``, ``max_segments``, such as
    :class:`avdetect.api.DetectOptions`)."""
    cfg = config or ProposalConfig()
    n = tracks["fused"].n_frames
    vmask = np.zeros(n, bool) if visual_present is None else np.asarray(visual_present, bool)
    amask = np.zeros(n, bool) if audio_present is None else np.asarray(audio_present, bool)
    use = {"fused": (tracks["fused"], vmask | amask)}
    if vmask.any():
        use["visual"] = (tracks["visual"], vmask)
    if audio_present is not None:
        use["audio"] = (tracks["audio"], amask)
    proposals = {k: propose(_masked(t, m), cfg) for k, (t, m) in use.items()}
    segments = flag_segments(proposals["fused"], tracks, vmask, amask, rule)
    return Localisation(proposals, segments, cfg)


def flag_segments(fused_props: np.ndarray, tracks: Mapping[str, ScoreTrack], vmask: np.ndarray, amask: np.ndarray,
                  rule) -> list[FlaggedSegment]:
    """Proposals whose frames look fake on average (>= ``rule.threshold``), deduplicated, with
    neighbours closer than ``rule.merge_gap_s`` joined (one event, not fragments), at least
    ``rule.min_segment_s`` long, at most ``rule.max_segments``, best first."""
    from avdetect.timegrid import seconds_to_frames_round

    thr = rule.threshold
    fused = tracks["fused"].frame
    kept: list[list] = []  # [start_frame, end_frame, mean fused p(fake)] in proposal rank order
    for conf, a_s, b_s in fused_props:
        if conf < rule.min_segment_score:
            continue
        a, b = int(seconds_to_frames_round(a_s)), int(seconds_to_frames_round(b_s))
        b = max(b, a + 1)
        p_fake = float(fused[a:b].mean())
        if p_fake < thr:
            continue
        # hard dedupe: soft-NMS keeps decayed near-duplicates in its ranked list
        if any(min(b, kb) - max(a, ka) > 0.3 * (max(b, kb) - min(a, ka)) for ka, kb, _ in kept):
            continue
        kept.append([a, b, p_fake])
    gap = int(seconds_to_frames_round(rule.merge_gap_s))
    merged: list[list] = []
    for a, b, _ in sorted(kept):
        if merged and a - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b, 0.0])
    for m in merged:  # a segment's score: the mean fused p(fake) of its frames
        m[2] = float(fused[m[0]:m[1]].mean())
    out: list[FlaggedSegment] = []
    for a, b, conf in sorted(merged, key=lambda m: -m[2]):
        if frames_to_seconds(b - a) < rule.min_segment_s - 1e-9 or len(out) >= rule.max_segments:
            continue
        vm, am = vmask[a:b], amask[a:b]
        v = float(tracks["visual"].frame[a:b][vm].mean()) if vm.any() else None
        au = float(tracks["audio"].frame[a:b][am].mean()) if am.any() else None
        if v is not None and au is not None and v >= thr and au >= thr:
            modality = "audio-visual"
        elif au is None or (v is not None and v >= au):
            modality = "visual"
        else:
            modality = "audio"
        out.append(FlaggedSegment(start_s=round(frames_to_seconds(a), 3), end_s=round(frames_to_seconds(b), 3),
                                  score=round(min(1.0, conf), 4), modality=modality,
                                  visual_score=None if v is None else round(v, 4),
                                  audio_score=None if au is None else round(au, 4)))
    return out
