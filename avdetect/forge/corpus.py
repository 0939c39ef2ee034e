"""A corpus of real clips split by person: the split file and the sources it names.

A split file is JSON ``{"roots": [folders relative to the file's base], "clips": {file name:
{"person": id, "split": train|dev|test}}}``; ``data_manifests/realfaces_split.json`` is the split
of the development corpus in ``../shared``. Splits are by person, never by clip: every clip of a
person is in one split.
"""
from __future__ import annotations

import json
from pathlib import Path

from avdetect.errors import DataFormatError
from avdetect.forge.files import SPLITS, Source

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mpg", ".mpeg", ".mkv", ".avi", ".webm", ".m4v"}


def read_split(path: str | Path) -> dict:
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        clips = d["clips"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataFormatError(f"not a split file ({err})", p) from None
    persons: dict[str, str] = {}
    for name, c in clips.items():
        if not isinstance(c, dict) or c.get("split") not in SPLITS or not c.get("person"):
            raise DataFormatError(f"{name}: each clip needs a person and a split in {SPLITS}", p)
        seen = persons.setdefault(c["person"], c["split"])
        if seen != c["split"]:
            raise DataFormatError(f"person {c['person']!r} is in two splits ({seen}, {c['split']})", p)
    return d


def split_sources(split_file: str | Path, base: str | Path, splits=SPLITS) -> list[Source]:
    """The clips of ``split_file`` found under ``base`` / its roots, in the given splits.
    A clip named in the file but absent is an error (the split must not silently shrink)."""
    d = read_split(split_file)
    base = Path(base)
    found: dict[str, Path] = {}
    for root in d.get("roots", ["."]):
        folder = base / root
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                if f.suffix.lower() in VIDEO_EXTENSIONS:
                    found.setdefault(f.name, f)
    missing = [n for n in d["clips"] if n not in found]
    if missing:
        raise DataFormatError(f"{len(missing)} clip(s) of the split are not under {base}: {', '.join(missing[:5])}",
                              split_file)
    return [Source(str(found[n].resolve()), c["person"], c["split"]) for n, c in sorted(d["clips"].items())
            if c["split"] in splits]


def folder_sources(paths: list[str | Path], split: str = "test") -> list[Source]:
    """Video files (or folders of them) with no split file: each file its own person."""
    out = []
    for p in map(Path, paths):
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS) if p.is_dir() else [p]
        out.extend(Source(str(f.resolve()), f.stem, split) for f in files)
    return out
