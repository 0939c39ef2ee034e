"""What each evidence kind finds on manipulated copies of the real sample clips, and its false
alarms on the untouched ones. Prints a table (a measurement for the record, not a test).

    python benchmarks/eval_forensics_cases.py [--clips-dir ../shared/samples] [--strength 0.5]

Material: every clip in the samples folder, repeated to 24 s with ffmpeg's concat filter, then
manipulated with ffmpeg exactly as tests/test_forensics.py does it: audio of [9, 12) s taken
0.2 / 0.5 / 1.0 s earlier (shift*), audio of [9, 12) s replaced by another clip's speech
(replace), the whole audio delayed / advanced by 0.5 s (whole+-0.5), frames of [9, 12) s
blurred and colour-shifted (visual). A span case counts as found by a kind when one of its
items with strength >= --strength overlaps the true span with IoU >= 0.5; a whole-offset case
counts for sync when the offset estimate moves by the applied shift within 2 frames. False
alarms: items with strength >= --strength on the untouched 24 s loops and on the original clips.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from avdetect.faces import track_faces  # noqa: E402
from avdetect.forensics import analyze  # noqa: E402
from avdetect.media import load_media  # noqa: E402
from avdetect.timegrid import FRAME_SECONDS  # noqa: E402
from test_forensics import _loop, iou, make_case  # noqa: E402

SPAN_CASES = ["shift0.2", "shift0.5", "shift1.0", "replace", "visual"]
WHOLE_CASES = ["whole0.5", "whole-0.5"]
KINDS = ["sync_span", "audio_splice", "visual_change", "face_track_jump", "blinks", "container", "sync_offset", "audio_bandwidth"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips-dir", default=str(ROOT.parent / "shared" / "samples"))
    ap.add_argument("--strength", type=float, default=0.5)
    args = ap.parse_args()
    clips = sorted(p for p in Path(args.clips_dir).iterdir() if p.suffix.lower() in {".mp4", ".mpg", ".avi", ".mov", ".mkv"})
    if len(clips) < 2:
        sys.exit(f"need at least two clips in {args.clips_dir}")
    found = defaultdict(int)  # (case, kind) -> clips found
    offsets = defaultdict(list)
    false = defaultdict(list)  # kind -> [(clip, start, strength)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        loops = {}
        for c in clips:
            loops[c.stem] = tmp / f"{c.stem}_loop.mp4"
            _loop(c, loops[c.stem])
        for c in clips:
            loop = loops[c.stem]
            other = loops[next(o.stem for o in clips if o.stem != c.stem)]
            track = track_faces(load_media(loop))
            base = analyze(load_media(loop), face_track=track)
            for name, res in (("loop", base), ("original", analyze(load_media(c)))):
                for e in res.evidence:
                    if e.strength >= args.strength:
                        false[e.kind].append(f"{c.stem[:18]}/{name}@{e.start_s if e.start_s is None else round(e.start_s, 1)}:{e.strength:.2f}")
            base_off = base.of_kind("sync_offset")[0].value["offset_s"]
            for case in SPAN_CASES + WHOLE_CASES:
                sub = tmp / f"{c.stem}_{case}"
                sub.mkdir()
                path, span, shift = make_case(loop, other, sub, case)
                res = analyze(load_media(path), face_track=None if case == "visual" else track)
                if span is not None:
                    for kind in KINDS:
                        if any(e.start_s is not None and e.strength >= args.strength and iou(span, (e.start_s, e.end_s)) >= 0.5
                               for e in res.of_kind(kind)):
                            found[(case, kind)] += 1
                else:
                    err_s = res.of_kind("sync_offset")[0].value["offset_s"] - base_off - shift
                    err = err_s / FRAME_SECONDS  # in frames
                    offsets[case].append(err)
                    found[(case, "sync_offset")] += abs(err) <= 2 + 1e-6
                    for kind in KINDS:
                        if kind != "sync_offset" and any(e.strength >= args.strength for e in res.of_kind(kind)):
                            found[(case, kind + "*")] += 1
    n = len(clips)
    print(f"{n} clips, 24 s loops; cell = clips (of {n}) where the kind found the manipulation "
          f"(span: IoU >= 0.5 at strength >= {args.strength}; whole: offset within 2 frames)")
    cols = ["sync_span", "sync_offset", "audio_splice", "visual_change", "face_track_jump", "blinks", "container"]
    print(f"{'case':<11}" + "".join(f"{c:>16}" for c in cols))
    for case in SPAN_CASES + WHOLE_CASES:
        print(f"{case:<11}" + "".join(f"{found[(case, c)]:>16}" if (case in SPAN_CASES and c != "sync_offset") or (case in WHOLE_CASES and c == "sync_offset")
                                      else f"{'-':>16}" for c in cols))
    for case, errs in offsets.items():
        print(f"{case}: offset error in frames per clip: {', '.join(f'{e:+.1f}' for e in errs)}")
    print(f"false alarms (strength >= {args.strength}) on untouched loops and originals:")
    for kind in KINDS:
        print(f"  {kind:<16} {len(false[kind]):>3}  {' '.join(false[kind][:6])}")


if __name__ == "__main__":
    main()
