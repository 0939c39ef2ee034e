"""Signal helpers shared by the forensic analyses: smoothing, robust scales, two-window change
scores and peak picking, runs of flags -> spans. All series are on the 25 fps frame grid."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def moving_average(x: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average over ``k`` frames along axis 0, edges padded with edge values."""
    x = np.asarray(x, dtype=np.float64)
    if k <= 1 or len(x) == 0:
        return x.copy()
    left, right = k // 2, k - 1 - k // 2
    pad = np.pad(x, [(left, right)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), pad]), axis=0)
    return (c[k:] - c[:-k]) / k


def highpass(x: np.ndarray, k: int = 25) -> np.ndarray:
    """``x`` minus its ``k``-frame moving average: keeps syllable-rate changes, drops slow trends."""
    return np.asarray(x, dtype=np.float64) - moving_average(x, k)


def change_scores(features: np.ndarray, mask: np.ndarray, window: int, min_fraction: float = 0.35,
                  floor: np.ndarray | None = None) -> np.ndarray:
    """Per-frame change score: how different the ``window`` frames after frame t are from the
    ``window`` frames before it.

    For each feature, ``|median(right) - median(left)| / max(pooled MAD, floor)`` using only the
    frames where ``mask`` is True; a side with fewer than ``min_fraction * window`` such frames
    gives no score (0). The per-frame score is the root mean square over features.

    Args:
        features: (T, D) float.
        mask: (T,) bool, frames that count (e.g. speech frames for spectral features).
        window: frames on each side.
        floor: (D,) smallest scale per feature (measurement noise), guards against MAD = 0.
    Returns: (T,) float; score[t] refers to the boundary at the start of frame t.
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim == 1:
        feats = feats[:, None]
    T, D = feats.shape
    out = np.zeros(T)
    if T < 2 * window or window < 2:
        return out
    x = np.where(mask[:, None], feats, np.nan)
    views = sliding_window_view(x, window, axis=0)  # (T - window + 1, D, window)
    counts = sliding_window_view(mask.astype(np.int32), window).sum(-1)  # (T - window + 1,)
    floor = np.zeros(D) if floor is None else np.asarray(floor, dtype=np.float64)
    need = max(2, int(np.ceil(min_fraction * window)))
    # boundary t: left window starts at t - window, right window starts at t
    ts = np.arange(window, T - window + 1)
    chunk = 2048
    for c0 in range(0, len(ts), chunk):
        t = ts[c0 : c0 + chunk]
        left, right = views[t - window], views[t]  # (n, D, window)
        ok = (counts[t - window] >= need) & (counts[t] >= need)
        if not ok.any():
            continue
        with np.errstate(all="ignore"), quiet_nan():
            ml, mr = np.nanmedian(left, axis=-1), np.nanmedian(right, axis=-1)  # (n, D)
            sl = np.nanmedian(np.abs(left - ml[..., None]), axis=-1)
            sr = np.nanmedian(np.abs(right - mr[..., None]), axis=-1)
            scale = np.maximum(1.4826 * 0.5 * (sl + sr), floor[None, :])
            stat = np.abs(mr - ml) / np.maximum(scale, 1e-9)
        stat = np.nan_to_num(stat, nan=0.0)
        score = np.sqrt(np.mean(stat**2, axis=1))
        out[t] = np.where(ok, score, 0.0)
    return out


class quiet_nan:
    """Silence numpy's 'All-NaN slice' warnings inside a block (those slices are handled)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def pick_peaks(score: np.ndarray, threshold: float, min_distance: int) -> list[int]:
    """Indices of local maxima of ``score`` at or above ``threshold``, greedily strongest first,
    at least ``min_distance`` frames apart, returned in time order."""
    cand = np.flatnonzero(score >= threshold)
    chosen: list[int] = []
    for i in cand[np.argsort(-score[cand], kind="stable")]:
        if all(abs(int(i) - j) >= min_distance for j in chosen):
            chosen.append(int(i))
    return sorted(chosen)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as half-open (start, stop) frame index pairs."""
    f = np.concatenate([[False], np.asarray(flags, bool), [False]])
    d = np.diff(f.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def close_gaps(flags: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False no longer than ``max_gap`` that lie between two True runs."""
    out = np.asarray(flags, bool).copy()
    r = runs(out)
    for (s0, e0), (s1, _e1) in zip(r, r[1:]):
        if s1 - e0 <= max_gap:
            out[e0:s1] = True
    return out


def squash(x: float, at_half: float, at_09: float) -> float:
    """Map a non-negative score to [0, 1): 0.5 at ``at_half``, 0.9 at ``at_09`` (logistic in x)."""
    # logistic: s = 1 / (1 + exp(-(x - a) * k)), with s(at_half) = 0.5 and s(at_09) = 0.9
    k = np.log(9.0) / max(1e-9, at_09 - at_half)
    return float(1.0 / (1.0 + np.exp(-(x - at_half) * k)))
