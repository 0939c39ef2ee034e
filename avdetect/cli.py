"""The ``avdetect`` command line.

Each sub-command is a pair of functions: ``_args_<name>(parser)`` declares its options and
``_run_<name>(args) -> int`` does the work and returns the exit status. ``main`` turns every
:class:`avdetect.errors.AVDetectError` into one line on stderr and a non-zero exit; other
exceptions also become one line (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from avdetect._version import __version__
from avdetect.errors import AVDetectError, CheckpointError, ConfigError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2  # bad input: the file or the arguments
EXIT_INTERRUPTED = 130


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


# ---------------------------------------------------------------------------------------
# probe
def _args_probe(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video file(s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-faces", action="store_true", help="skip face tracking (media facts only)")
    p.add_argument("--backend", default="auto", help="face backend: auto (default: mediapipe when installed, else "
                   "opencv), mediapipe, opencv or face-alignment")


def _run_probe(args) -> int:
    from avdetect.probe import format_probe, probe

    status = EXIT_OK
    results = []
    for path in args.files:
        try:
            info = probe(path, faces=not args.no_faces, backend=args.backend)
        except AVDetectError as err:
            print(f"avdetect probe: error: {err}", file=sys.stderr)
            status = EXIT_USER
            continue
        results.append(info)
        if not args.json:
            print(format_probe(info))
    if args.json and results:
        _print_json(results[0] if len(args.files) == 1 else results)
    return status


# ---------------------------------------------------------------------------------------
# evaluate
def _args_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metadata", required=True, metavar="M",
                   help="ground truth: LAV-DF metadata.json, AV-Deepfake1M {split}_metadata.json or FakeAVCeleb meta_data.csv")
    p.add_argument("--predictions", metavar="P.json", help="localisation predictions {file: [[confidence, start_s, end_s], ...]}")
    p.add_argument("--scores", metavar="S.txt", help="detection scores, lines 'file;score'")
    p.add_argument("--protocol", choices=["lavdf", "av1m"], help="thresholds and N to report (default: from the metadata)")
    p.add_argument("--split", help="evaluate only the metadata entries of this split (e.g. test)")
    p.add_argument("--subset", default="full", choices=["full", "visual_only", "audio_only"],
                   help="LAV-DF evaluation subset (drops audio-only resp. visual-only fakes, as LAV-DF's evaluate.py)")
    p.add_argument("--target", default="fake", choices=["fake", "visual", "audio"],
                   help="AV-Deepfake1M: score against fake_segments, visual_fake_segments or audio_fake_segments")
    p.add_argument("--threshold", type=float, default=0.5, help="score at or above which a video counts as fake (accuracy)")
    p.add_argument("--units", default="seconds", choices=["seconds", "frames"],
                   help="time unit of the predictions' start/end (default seconds; frames: LAV-DF's own BA-TFD output)")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second of --units frames (default 25, as LAV-DF)")
    p.add_argument("--category-naming", choices=["fakeavceleb", "av1m"],
                   help="name per-category accuracy as FakeAVCeleb (RealVideo-FakeAudio, ...) or AV-Deepfake1M "
                        "(audio_modified, ...) does (default: as the metadata file does)")
    p.add_argument("--fakeavceleb-seed", type=int, default=2024,
                   help="FakeAVCeleb meta_data.csv: seed of the subject-disjoint split given to its videos (the "
                        "manifest's --seed, default 2024)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _run_evaluate(args) -> int:
    from avdetect.evaluation import evaluate_files, format_table
    from avdetect.metrics import summarise

    if args.predictions is None and args.scores is None:
        print("avdetect evaluate: error: give --predictions and/or --scores", file=sys.stderr)
        return EXIT_USER
    result = evaluate_files(
        args.metadata, predictions_path=args.predictions, scores_path=args.scores, protocol=args.protocol,
        split=args.split, subset=args.subset, target=args.target, threshold=args.threshold, units=args.units,
        fps=args.fps, category_naming=args.category_naming, fakeavceleb_seed=args.fakeavceleb_seed,
    )
    if args.json:
        _print_json(summarise(result))
    else:
        print(format_table(result))
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# synth
def _args_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--n", type=int, default=100, help="number of clips (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--split", default="0.8,0.1,0.1", metavar="TRAIN,DEV,TEST",
                   help="split fractions (default 0.8,0.1,0.1)")
    p.add_argument("--difficulty", default="medium", choices=["easy", "medium", "hard", "mixed"],
                   help="artefact strength range (default medium)")
    p.add_argument("--variant", default="default", choices=["default", "holdout"],
                   help="holdout: identities, voices and artefact styles unseen with default")
    p.add_argument("--real-share", type=float, default=0.25, help="share of real clips (default 0.25)")
    p.add_argument("--clip-share", type=float, default=0.2,
                   help="share of fakes manipulated over the whole clip, FakeAVCeleb style (default 0.2)")
    p.add_argument("--kinds", default="visual,audio,both,offset",
                   help="fake kinds to draw from (default visual,audio,both,offset)")
    p.add_argument("--duration", default="4,6", metavar="MIN[,MAX]", help="clip length in seconds (default 4,6)")
    p.add_argument("--size", type=int, default=256, help="frame size in pixels, square (default 256)")
    p.add_argument("--workers", type=int, default=0, help="parallel processes (default: number of CPUs)")


def _run_synth(args) -> int:
    import os

    from avdetect.errors import ConfigError
    from avdetect.synth import generate

    try:
        fr = tuple(float(x) for x in args.split.split(","))
        dur = [float(x) for x in args.duration.split(",")]
    except ValueError as err:
        raise ConfigError(f"--split and --duration take comma-separated numbers ({err})") from None
    if len(dur) not in (1, 2):
        raise ConfigError(f"--duration takes MIN or MIN,MAX, got {args.duration!r}")
    workers = args.workers or os.cpu_count() or 1
    start = time.perf_counter()
    summary = generate(
        args.out, n=args.n, seed=args.seed, workers=workers, quiet=args.quiet, splits=fr,
        difficulty=args.difficulty, variant=args.variant, real_share=args.real_share,
        clip_share=args.clip_share, kinds=tuple(k for k in args.kinds.split(",") if k),
        min_duration=dur[0], max_duration=dur[-1], size=args.size,
    )
    took = time.perf_counter() - start
    print(f"wrote {summary['n']} clips to {summary['out_dir']} in {took:.1f} s "
          f"({summary['n'] / took * 60:.0f} clips/min, {workers} workers)")
    print("splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    print("types:  " + ", ".join(f"{k} {v}" for k, v in summary["modify_type"].items()))
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# detect / scan / demo (issue 7)
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="DIR|NAME",
                   help="checkpoint folder, or the name of a shipped checkpoint such as avdetect-small-synth "
                        "(default: $AVDETECT_CHECKPOINT, else the shipped default)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--threshold", type=float,
                   help="p(fake) at or above which a file or segment is flagged (default: the checkpoint's calibrated threshold, else 0.5)")
    p.add_argument("--hop", type=int, help="frames between model windows (default: 3/4 of a window)")
    p.add_argument("--threads", type=int, help="torch CPU threads for the model (default: the cores left free by "
                   "the machine's load and the face tracker, at most 8; 1 on a 2-core or busy machine)")
    p.add_argument("--no-forensics", action="store_true", help="skip the training-free evidence")
    p.add_argument("--face-backend", metavar="NAME", help="face backend (default: the one the checkpoint was "
                   "trained with; auto, mediapipe, opencv, face-alignment)")


def _detect_options(args, share: int = 1) -> dict:
    """DetectOptions from the model arguments; ``share``: models running at once (the default
    threads are divided among them)."""
    from avdetect.api import default_threads

    opts = {"forensics": not args.no_forensics, "threads": args.threads or max(1, default_threads() // max(1, share))}
    if args.threshold is not None:
        opts["threshold"] = args.threshold
    if args.hop is not None:
        opts["hop"] = args.hop
    if getattr(args, "face_backend", None):
        opts["face_backend"] = args.face_backend
    return opts


def _args_detect(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="video or audio file(s)")
    for fmt, what in (("json", "JSON report"), ("html", "self-contained HTML report"),
                      ("vtt", "WebVTT track of the flags"), ("csv", "CSV of flagged segments")):
        p.add_argument(f"--{fmt}", metavar="OUT",
                       help=f"write the {what} here (a folder when several files are given: one <name>.{fmt} each)")
    _add_model_args(p)


def report_names(paths: list[str]) -> dict[str, str]:
    """A distinct report name (no extension) for each input path, for a folder of reports:
    the file's stem; files sharing a stem (camera folders of ``VID_0001.mp4``) get their
    parent folder's name in front (``a__clip``, ``b__clip``), and any name still taken a
    ``-2``, ``-3`` suffix. Deterministic in the order given; no report overwrites another."""
    import os
    from collections import Counter
    from pathlib import Path

    stems = Counter(Path(p).stem for p in paths)
    names, used = {}, set()
    for p in paths:
        q = Path(p)
        # the folder as named (abspath, not resolve: a link is not followed, and a link loop is no crash)
        base = q.stem if stems[q.stem] == 1 else "__".join([*Path(os.path.abspath(q)).parent.parts[-1:], q.stem])
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        names[p] = name
    return names


def _report_targets(args, path, several: bool, names: dict[str, str] | None = None) -> dict:
    from pathlib import Path

    targets = {}
    for fmt in ("json", "html", "vtt", "csv"):
        out = getattr(args, fmt)
        if out is None:
            continue
        stem = (names or {}).get(path, Path(path).stem)
        targets[fmt] = Path(out) / f"{stem}.{fmt}" if several else Path(out)
    return targets


def _check_targets(args, several: bool, names: dict[str, str]) -> None:
    """Fail before any detection when a report target cannot be written: a file target that is
    a folder, a device (``/dev/full``), a named pipe or a socket; a folder target that is a file;
    a place this process cannot create files in (read-only mount, /proc, no permission); with
    several inputs, a report name inside the folder that is taken by something other than a
    regular file. One line, exit 2; nothing is detected in vain."""
    from pathlib import Path

    from avdetect.errors import ReportError
    from avdetect.report.writers import check_target, refuse_special_file

    for fmt in ("json", "html", "vtt", "csv"):
        out = getattr(args, fmt)
        if out is None:
            continue
        p = Path(out)
        if not several:
            check_target(p, label=f"--{fmt}")
            continue
        if p.exists() and not p.is_dir():
            raise ReportError(f"--{fmt} must be a folder when several files are given (one report each)", p)
        check_target(p, folder=True, label=f"--{fmt}")
        for name in names.values():
            refuse_special_file(p / f"{name}.{fmt}", f"--{fmt}")


def _run_detect(args) -> int:
    from avdetect.api import Detector
    from avdetect.media import load_media
    from avdetect.report import write_reports

    several = len(args.files) > 1
    names = report_names(list(args.files))
    _check_targets(args, several, names)
    status = EXIT_OK
    # inspect every file first (container only, well under a second each): a broken file is
    # reported at once, without waiting for the model to load, and none is loaded if all are broken
    readable = []  # (path, its Media: detect does not inspect it again)
    for path in args.files:
        try:
            readable.append((path, load_media(path)))
        except AVDetectError as err:
            print(f"avdetect detect: error: {err}", file=sys.stderr)
            status = EXIT_USER
    if not readable:
        return status
    # the weights load in a thread while the first file's faces are tracked (in their own process)
    detector = Detector.from_pretrained(args.checkpoint, device=args.device, background=True, **_detect_options(args))
    for path, media in readable:
        try:
            report = detector.detect(path, quiet=args.quiet, media=media)
        except (CheckpointError, ConfigError):  # not this file's fault: stop (main prints it)
            raise
        except AVDetectError as err:
            print(f"avdetect detect: error: {err}", file=sys.stderr)
            status = EXIT_USER
            continue
        written = write_reports(report, **_report_targets(args, path, several, names))
        print(report.summary())
        for fmt, out in written.items():
            print(f"  {fmt}: {out}")
    return status


def _args_scan(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", metavar="DIR|LIST", help="folder with media files (searched recursively), or a text "
                   "file listing paths, one per line")
    p.add_argument("--out", required=True, metavar="RESULTS.jsonl", help="results, one JSON line per file (appended; resumable)")
    p.add_argument("--workers", type=int, help="parallel workers, one model each (default: 1 locally; with --engine "
                   "ray, as many as the cluster's CPUs (GPUs) allow)")
    p.add_argument("--retry-failed", action="store_true", help="redo files whose earlier attempt failed")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: processes on this machine (default); ray: Ray actors on a cluster")
    p.add_argument("--address", metavar="ADDR", help="ray: the cluster to join (auto, HOST:6379, ray://HOST:10001; "
                   "default: a local Ray started for the scan)")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="ray: CPUs per worker (default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="ray: GPUs per worker (default 0; > 0 runs on cuda)")
    _add_model_args(p)


def _run_scan(args) -> int:
    from avdetect.scan import ScanInterrupted, scan

    workers = args.workers if args.workers is not None else (None if args.engine == "ray" else 1)
    try:
        s = scan(args.directory, args.out, workers=workers, checkpoint=args.checkpoint, device=args.device,
                 retry_failed=args.retry_failed, quiet=args.quiet, engine=args.engine, address=args.address,
                 ray_cpus=args.ray_cpus, ray_gpus=args.ray_gpus,
                 **_detect_options(args, share=(workers or 1) if args.engine == "local" else 1))
    except ScanInterrupted as stop:
        s = stop.summary
        left = s.found - s.skipped - s.done
        print(f"avdetect scan: interrupted after {s.seconds:.1f} s: {s.done} files done in this run, {left} left; "
              f"the results so far are in {s.out}: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"scanned {s.found} files in {args.directory}: {s.skipped} already done, {s.done} processed "
          f"({s.ok} ok, {s.failed} failed, {s.fake} flagged fake) in {s.seconds:.1f} s -> {s.out}"
          + (f" ({s.worker_deaths} files re-queued after a worker died)" if s.worker_deaths else "")
          + (f"; {len(s.unreadable)} folders could not be read" if s.unreadable else ""))
    for line in s.unreadable[:20]:
        print(f"avdetect scan: warning: folder not searched: {line}", file=sys.stderr)
    if len(s.unreadable) > 20:
        print(f"avdetect scan: warning: ... and {len(s.unreadable) - 20} more folders not searched", file=sys.stderr)
    for line in s.failures[:20]:
        print(f"  failed: {line}")
    if len(s.failures) > 20:
        print(f"  ... and {len(s.failures) - 20} more failures (see the results file)")
    return EXIT_OK


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="avdetect-demo", metavar="DIR", help="output folder (default ./avdetect-demo)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic clip (default 7)")
    _add_model_args(p)


def _run_demo(args) -> int:
    from pathlib import Path

    from avdetect.api import Detector
    from avdetect.checkpoints import SYNTHETIC_CHECKPOINT_NAME, resolve_checkpoint
    from avdetect.report import write_reports
    from avdetect.synth import ClipSpec, Manipulation, render_clip

    # the demo clip is synthetic: the synthetic checkpoint is the one trained on such clips
    checkpoint = args.checkpoint or SYNTHETIC_CHECKPOINT_NAME
    resolve_checkpoint(checkpoint)  # fail before rendering when there is no model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "demo.mp4"
    spec = ClipSpec(seed=args.seed, duration=8.0, size=256, crf=23,
                    manipulation=Manipulation(kind="both", strength=0.8, segments=[(1.6, 2.8), (5.2, 6.4)]))
    truth = render_clip(clip, spec)
    (out / "truth.json").write_text(json.dumps(truth.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(f"rendered {clip}: {truth.modify_type}, manipulated {truth.fake_segments} s")
    detector = Detector.from_pretrained(checkpoint, device=args.device, **_detect_options(args))
    report = detector.detect(clip, quiet=args.quiet)
    written = write_reports(report, json=out / "report.json", html=out / "report.html", vtt=out / "report.vtt",
                            csv=out / "report.csv")
    print(report.summary())
    from avdetect.metrics import iou_1d

    flagged = [[s.start_s, s.end_s] for s in report.segments]
    for seg in truth.fake_segments:
        best = float(iou_1d([seg], flagged).max()) if flagged else 0.0
        print(f"  truth {seg[0]:.2f}-{seg[1]:.2f} s: best IoU with a flagged segment {best:.2f}")
    for fmt, path in written.items():
        print(f"  {fmt}: {path}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# evidence
def _args_evidence(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="audio or video file")
    p.add_argument("--json", action="store_true", help="print JSON (evidence, skipped analyses and per-window tracks)")
    p.add_argument("--kinds", nargs="+", metavar="KIND", help="analyses to run: container audio sync visual blinks (default: all)")
    p.add_argument("--min-strength", type=float, default=0.0, help="table: hide items weaker than this")
    p.add_argument("--no-tracks", action="store_true", help="JSON: leave out the per-window tracks")


def _run_evidence(args) -> int:
    from avdetect.forensics import analyze
    from avdetect.media import load_media

    result = analyze(load_media(args.file), kinds=args.kinds)
    if args.json:
        _print_json(result.to_dict(tracks=not args.no_tracks))
        return EXIT_OK
    print(f"{result.path}  ({result.duration_s:.2f} s)  ran: {', '.join(result.ran) or 'nothing'}")
    for name, why in result.skipped.items():
        if why != "not requested":
            print(f"  skipped {name}: {why}")
    print(f"{'strength':>8}  {'kind':<16} {'start_s':>8} {'end_s':>8}  explanation")
    for e in result.strongest(args.min_strength):
        span = ("", "") if e.whole_file else (f"{e.start_s:.2f}", f"{e.end_s:.2f}")
        print(f"{e.strength:8.2f}  {e.kind:<16} {span[0]:>8} {span[1]:>8}  {e.explanation}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# manifest (issue 6)
def _args_manifest(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=["lavdf", "fakeavceleb", "av1m", "synthetic", "forged", "realfaces"],
                   help="benchmark layout of ROOT (forged: an `avdetect forge` folder; realfaces: the real clips "
                        "of a person split file under ROOT)")
    p.add_argument("root", metavar="ROOT", help="dataset folder (as distributed, or an `avdetect synth` output)")
    p.add_argument("--out", metavar="M.jsonl", help="manifest to write (default data_manifests/<dataset>.jsonl)")
    p.add_argument("--no-check-files", action="store_true", help="keep entries whose media file is missing")
    p.add_argument("--no-probe", action="store_true", help="FakeAVCeleb: do not read durations (faster; segments left "
                   "empty in the manifest, taken as whole-clip from the cache's frame count when training)")
    p.add_argument("--seed", type=int, default=None, help="FakeAVCeleb: seed of the subject-disjoint split (default 2024)")
    p.add_argument("--workers", type=int, default=8, help="FakeAVCeleb: parallel duration probes (default 8)")
    p.add_argument("--split-file", metavar="SPLIT.json",
                   help="realfaces: person split file (default data_manifests/realfaces_split.json)")


def _run_manifest(args) -> int:
    from pathlib import Path

    from avdetect.data import build_manifest, write_manifest
    from avdetect.data.manifest import FAKEAVCELEB_SEED, summarize

    kwargs = {"check_files": not args.no_check_files}
    if args.dataset == "fakeavceleb":
        kwargs.update(probe=not args.no_probe, workers=args.workers,
                      seed=FAKEAVCELEB_SEED if args.seed is None else args.seed)
    if args.dataset == "realfaces":
        kwargs["split_file"] = args.split_file
    entries = build_manifest(args.dataset, args.root, **kwargs)
    out = write_manifest(entries, args.out or Path("data_manifests") / f"{args.dataset}.jsonl")
    summary = summarize(entries)
    print(f"wrote {summary['n']} clips to {out}")
    for split, c in sorted(summary["splits"].items()):
        print(f"  {split}: {c['real']} real, {c['fake']} fake" + (f", {c['unlabelled']} unlabelled (predict only)"
                                                                  if c["unlabelled"] else ""))
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# preprocess (issue 6)
def _args_preprocess(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="MANIFEST", help="manifest (.jsonl) from `avdetect manifest`")
    p.add_argument("--out", required=True, metavar="CACHE", help="cache folder (created; resumed if it exists)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--split", help="only the clips of this split")
    p.add_argument("--faces", action="store_true", help="also store 128x128 face crops (models with use_face)")
    p.add_argument("--backend", default="auto", help="face backend (default auto: mediapipe when installed, else opencv)")
    from avdetect.vocab import DECODE_MAX_SIDE

    p.add_argument("--max-side", type=int, default=DECODE_MAX_SIDE,
                   help=f"decode frames at most this large (default {DECODE_MAX_SIDE}, as detect does)")
    p.add_argument("--retry-failed", action="store_true", help="try again the clips listed in failures.jsonl")
    p.add_argument("--crop-codec", choices=["webp", "raw"],
                   help="how crops are stored: webp (lossless, about a third of raw; default for a new cache) or raw "
                        "arrays (default when resuming a cache written before)")


def _run_preprocess(args) -> int:
    from avdetect.data import preprocess, read_manifest

    entries = read_manifest(args.manifest, split=args.split)
    s = preprocess(entries, args.out, workers=args.workers, faces=args.faces, backend=args.backend,
                   max_side=args.max_side, retry_failed=args.retry_failed, quiet=args.quiet,
                   crop_codec=args.crop_codec)
    print(f"{s.processed} clips preprocessed in {s.seconds:.1f} s ({s.clips_per_second:.2f} clips/s, "
          f"{args.workers} workers); {s.done_before} already done; {s.failed} failed"
          + (f" (see {args.out}/failures.jsonl)" if s.failed else ""))
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# forge (issue 14)
def _args_forge(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SRC", help="real video files or folders of them (each file one "
                   "person, split 'test'); or use --split-file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--split-file", metavar="SPLIT.json", help="a person split file (data_manifests/realfaces_split.json); "
                   "its clips are looked up under --base")
    p.add_argument("--base", default="../shared", help="folder the split file's roots are under (default ../shared)")
    p.add_argument("--splits", default="train,dev,test", help="with --split-file: which splits to forge (default all)")
    p.add_argument("--families", default=",".join(("face_blend", "mouth_rerender", "voice_swap", "voice_tts",
                                                   "voice_vocoder", "av_shift", "both")),
                   help="forgery families, comma-separated (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-real", action="store_true", help="do not write the re-encoded untouched copies")
    from avdetect.vocab import DECODE_MAX_SIDE

    p.add_argument("--max-side", type=int, default=DECODE_MAX_SIDE,
                   help=f"decode and write frames at most this large (default {DECODE_MAX_SIDE}, as detect does)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")


def _run_forge(args) -> int:
    from avdetect.errors import ConfigError
    from avdetect.forge import forge_folder
    from avdetect.forge.corpus import folder_sources, split_sources

    if args.split_file:
        sources = split_sources(args.split_file, args.base, splits=tuple(s for s in args.splits.split(",") if s))
    elif args.sources:
        sources = folder_sources(args.sources)
    else:
        raise ConfigError("give source videos or --split-file")
    start = time.perf_counter()
    summary = forge_folder(sources, args.out, seed=args.seed, families=tuple(f for f in args.families.split(",") if f),
                           max_side=args.max_side, workers=args.workers, write_real=not args.no_real, quiet=args.quiet)
    print(f"wrote {summary['files']} files from {len(sources)} sources to {summary['out_dir']} in "
          f"{time.perf_counter() - start:.1f} s")
    print("families: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["families"].items())))
    for path, err in summary["failed"].items():
        print(f"failed: {path}: {err}", file=sys.stderr)
    return EXIT_USER if summary["failed"] else EXIT_OK


# ---------------------------------------------------------------------------------------
# serve (issue 16)
def _args_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other address "
                   "needs an API token)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--db", default="avdetect-serve/jobs.sqlite3", metavar="PATH",
                   help="SQLite job database, created if missing; uploads are kept beside it "
                        "(default avdetect-serve/jobs.sqlite3)")
    p.add_argument("--media-root", metavar="DIR", help="files under this folder may be submitted by path "
                   "(default: uploads only)")
    p.add_argument("--max-upload-mb", type=float, default=2048, help="largest upload in MiB (default 2048)")
    p.add_argument("--max-duration", type=float, default=3600, metavar="S",
                   help="longest media in seconds (default 3600; 0: no limit)")
    p.add_argument("--token", help="API token clients send as 'Authorization: Bearer TOKEN' (default: "
                   "$AVDETECT_API_TOKEN; on a non-loopback address one is generated into api_token beside the database)")
    p.add_argument("--no-auth", action="store_true", help="no API token even on a non-loopback address")
    p.add_argument("--workers", type=int, default=1, help="model worker threads, one model each (default 1)")
    p.add_argument("--keep-uploads", action="store_true", help="keep uploaded files after their job finished")
    p.add_argument("--max-interruptions", type=int, default=3,
                   help="a job running at this many service crashes fails instead of running again (default 3)")
    p.add_argument("--shutdown-grace", type=float, default=5.0, metavar="S",
                   help="on SIGTERM, seconds a running job may take to finish before it is queued for the next "
                        "start (default 5)")
    _add_model_args(p)


def _run_serve(args) -> int:
    import importlib.util

    from avdetect.errors import ConfigError

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"avdetect serve needs {', '.join(missing)}: pip install 'avdetect[serve]'")
    from avdetect.serve import ServeConfig, run

    if not args.quiet:  # say where it listens and what it loaded, without -v
        for name in ("avdetect", "uvicorn.error"):
            if logging.getLogger(name).getEffectiveLevel() > logging.INFO:
                logging.getLogger(name).setLevel(logging.INFO)
    config = ServeConfig(db=args.db, host=args.host, port=args.port, media_root=args.media_root,
                         max_upload_bytes=int(args.max_upload_mb * 2**20), max_duration_s=args.max_duration or None,
                         token=args.token, auth=not args.no_auth, workers=args.workers, keep_uploads=args.keep_uploads,
                         max_interruptions=args.max_interruptions, shutdown_grace_s=args.shutdown_grace,
                         checkpoint=args.checkpoint, device=args.device,
                         options=_detect_options(args, share=args.workers))
    run(config, log_requests=args.verbose > 0)
    return EXIT_OK


# ---------------------------------------------------------------------------------------
COMMANDS = {
    "probe": (_args_probe, _run_probe, "media facts and face coverage of a file"),
    "evaluate": (_args_evaluate, _run_evaluate, "score predictions with the LAV-DF / AV-Deepfake1M protocols"),
    "synth": (_args_synth, _run_synth, "generate a synthetic audio-visual deepfake benchmark"),
    "detect": (_args_detect, _run_detect, "detect and localise manipulations in files; write JSON/HTML/VTT/CSV reports"),
    "scan": (_args_scan, _run_scan, "detect every media file in a folder into a resumable JSON-lines file"),
    "demo": (_args_demo, _run_demo, "render a manipulated synthetic clip, detect it and write all reports"),
    "evidence": (_args_evidence, _run_evidence, "training-free forensic evidence: AV sync, splices, blinks, container traces"),
    "manifest": (_args_manifest, _run_manifest, "build a dataset manifest (JSONL) for LAV-DF, FakeAVCeleb, AV-Deepfake1M, synthetic"),
    "forge": (_args_forge, _run_forge, "forged copies of real videos with known spans (LAV-DF / AV-Deepfake1M metadata)"),
    "preprocess": (_args_preprocess, _run_preprocess, "decode + face-track a manifest's clips once into a resumable cache"),
    "serve": (_args_serve, _run_serve, "an HTTP detection service: upload or submit files, fetch reports, an upload page"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avdetect",
        description="Find audio-visual deepfakes in video files and say where in time they are.",
    )
    parser.add_argument("--version", action="version", version=f"avdetect {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_args, _run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USER
    level = logging.WARNING if args.quiet or args.verbose == 0 else (logging.INFO if args.verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _add_args, run, _help = COMMANDS[args.command]
    start = time.perf_counter()
    try:
        return run(args)
    except AVDetectError as err:
        print(f"avdetect {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(f"avdetect {args.command}: interrupted after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # noqa: BLE001 - the CLI must never show a traceback by default
        if args.debug:
            raise
        print(
            f"avdetect {args.command}: internal error: {type(err).__name__}: {err} "
            "(run with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
