"""Checkpoints: where the shipped ones are, which folder a name means, and what a checkpoint's
``calibration.json`` says about its own use (threshold, real_below, caveat, domain).

A checkpoint is a folder holding ``model.safetensors`` + ``config.json`` (loaded by
:meth:`avdetect.models.AVDetector.from_pretrained`) and optionally ``calibration.json``
(:func:`read_calibration`). A bare name such as ``"avdetect-small-synth"`` (no slash, not an
existing path) is looked up among the shipped checkpoints (:func:`resolve_checkpoint`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from avdetect.domain import Domain
from avdetect.errors import CheckpointError, CheckpointNotFoundError

#: Name of the checkpoint ``detect`` uses by default: trained on real talking-head footage and
#: forgeries made from it (``recipes/configs/realfaces.yaml``), calibrated on real dev clips.
DEFAULT_CHECKPOINT_NAME = "avdetect-small-real"
#: The checkpoint trained on the synthetic benchmark only (the demo's clips are synthetic).
SYNTHETIC_CHECKPOINT_NAME = "avdetect-small-synth"
#: Environment variable that overrides the default checkpoint folder.
CHECKPOINT_ENV = "AVDETECT_CHECKPOINT"


def shipped_checkpoint_roots() -> list[Path]:
    """Folders that hold the shipped checkpoints, one sub-folder each: ``avdetect/_checkpoints``
    inside the installed package (a wheel) and, in a source checkout, ``checkpoints/`` at the top
    of the tree (``avdetect/_checkpoints`` links to it)."""
    here = Path(__file__).resolve().parent
    return [here / "_checkpoints", here.parent / "checkpoints"]


def available_checkpoints() -> list[str]:
    """Names of the shipped checkpoints (folders with a ``config.json`` in a shipped root)."""
    names: set[str] = set()
    for root in shipped_checkpoint_roots():
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if (p / "config.json").is_file())
    return sorted(names)


def default_checkpoint_dir() -> Path:
    """``$AVDETECT_CHECKPOINT`` if set, else the shipped :data:`DEFAULT_CHECKPOINT_NAME`: inside the
    installed package (``avdetect/_checkpoints``, in a wheel) or, in a source checkout,
    ``checkpoints/`` at the top of the tree (``avdetect/_checkpoints`` links to it)."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    packaged, top = shipped_checkpoint_roots()
    if (packaged / DEFAULT_CHECKPOINT_NAME).is_dir():
        return packaged / DEFAULT_CHECKPOINT_NAME
    return top / DEFAULT_CHECKPOINT_NAME


def _is_bare_name(checkpoint: str | Path) -> bool:
    text = str(checkpoint)
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return bool(text) and text not in (".", "..") and not any(c in text for c in seps)


def resolve_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """The checkpoint folder to load: None: the default; an existing path: itself; a bare name (no
    slash, not an existing path, e.g. ``"avdetect-small-synth"``): the shipped checkpoint of that
    name (:func:`shipped_checkpoint_roots`). Raises :class:`CheckpointNotFoundError` if absent
    (for an unknown name, listing the names available)."""
    path = default_checkpoint_dir() if checkpoint is None else Path(checkpoint)
    if checkpoint is not None and not path.exists() and _is_bare_name(checkpoint):
        for root in shipped_checkpoint_roots():
            if (root / str(checkpoint)).is_dir():
                return root / str(checkpoint)
        names = available_checkpoints()
        raise CheckpointNotFoundError(
            f"no checkpoint folder or shipped checkpoint named {str(checkpoint)!r} (shipped checkpoints: "
            f"{', '.join(names) if names else 'none installed'}); pass one of those names or a checkpoint folder")
    if not path.exists():
        if checkpoint is None:
            raise CheckpointNotFoundError(
                f"the default checkpoint {DEFAULT_CHECKPOINT_NAME} is not installed here: train it with "
                f"`python recipes/train.py --config recipes/configs/realfaces.yaml` and put it in that folder, "
                f"set ${CHECKPOINT_ENV}, or pass a checkpoint folder (--checkpoint DIR)", path)
        raise CheckpointNotFoundError("checkpoint folder does not exist", path)
    return path


CALIBRATION_FILE = "calibration.json"


def read_calibration(folder: Path) -> dict | None:
    """What a checkpoint says about its own use (``calibration.json`` beside its weights), or None
    when there is no such file (then the defaults apply, :class:`avdetect.domain.Domain` included).

    Keys: ``threshold`` (its decision threshold, required), ``method`` (how it was found),
    optionally ``warning`` (a caveat every report made with it must carry, e.g. synthetic-only
    training) and ``domain``: what its training covered, an object whose keys all have defaults
    that fit a talking-face model (absent keys take them; an absent ``domain`` is all defaults)::

        "domain": {"streams": ["video", "audio"],  # streams it was trained on; the file needs all
                   "min_face_coverage": 0.5,        # fraction of frames with a tracked face
                   "min_face_px": 40,               # main face height, source pixels
                   "min_face_frac": 0.06,           # main face height / source frame height
                   "min_speech_frac": 0.15,         # fraction of frames with speech
                   "max_comparable_faces": 1,       # faces of comparable size on screen together
                   "comparable_face_ratio": 0.5,    # "comparable": persistence x size >= this x the main face's
                   "min_mouth_motion": 1.0}         # below: a still picture (grey levels, avdetect.domain)

    Returned as ``{"threshold", "method", "warning", "domain"}`` with ``domain`` a
    :class:`~avdetect.domain.Domain`. A malformed file (bad JSON, missing or out-of-range
    threshold, a ``domain`` that is not an object, an unknown domain key, a wrong type or an
    out-of-range value) is a :class:`CheckpointError`, never a silent default."""
    f = Path(folder) / CALIBRATION_FILE
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        value = float(data["threshold"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"malformed {CALIBRATION_FILE}: {err}", f) from err
    if not 0.0 < value < 1.0:
        raise CheckpointError(f"{CALIBRATION_FILE}: threshold must be in (0, 1), got {value}", f)
    try:
        domain = Domain.from_dict(data.get("domain"))
    except ValueError as err:
        raise CheckpointError(f"{CALIBRATION_FILE}: malformed domain: {err}", f) from err
    real_below = data.get("real_below")
    if real_below is not None:
        try:
            real_below = float(real_below)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{CALIBRATION_FILE}: real_below must be a number: {err}", f) from err
        if not 0.0 < real_below <= value:
            raise CheckpointError(f"{CALIBRATION_FILE}: real_below must be in (0, threshold], got {real_below}", f)
    warning = data.get("warning")
    return {"threshold": value, "method": str(data.get("method", "")), "warning": str(warning) if warning else None,
            "domain": domain, "real_below": real_below}
