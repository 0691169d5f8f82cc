"""The ``colorize`` command: a photo or a folder of them, with a record of every file."""

import logging
import sys
import time
import tomllib
from pathlib import Path

from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.cli.common import CommandError, check_model_dir, configs, parallel_backend, \
    saturation_type
from deepcolor.colorize import METHODS, Outcome, colorize_batch, load_colorizer, plan_outputs
from deepcolor.files import display_path
from deepcolor.images.picture import MAX_PIXELS
from deepcolor.modelcheck import SETTING_LIMITS, verify_model
from deepcolor.record import append_record, colorize_log_path, end_partial_line

log = logging.getLogger("deepcolor")

FORMATS = {"png": ".png", "jpg": ".jpg", "tif": ".tif", "webp": ".webp", "bmp": ".bmp", "keep": None}
FORMAT_ALIASES = {"jpeg": "jpg", "tiff": "tif"}


def format_type(value):
    """--format's type: lower case, 'jpeg' and 'tiff' as 'jpg' and 'tif' (choices are checked after)."""
    value = value.lower()
    return FORMAT_ALIASES.get(value, value)


def add_colorize(sub, common, parallel):
    p = sub.add_parser("colorize", parents=[common, parallel], help="colorize a grey photo or a folder of them")
    p.add_argument("input", metavar="IN", help="an image file or a folder (searched recursively)")
    p.add_argument("output", metavar="OUT", help="output folder (the input tree is mirrored), or a file")
    p.add_argument("--model", metavar="MODEL_DIR", help="trained model (default: the bundled one)")
    p.add_argument("--method", choices=METHODS, default="deepcolor",
                   help="deepcolor (default), or a baseline trained by deepcolor report (with --model)")
    p.add_argument("--format", type=format_type, choices=tuple(FORMATS), default="png",
                   help="output format (default png: lossless, 16-bit and alpha kept; jpeg = jpg, tiff = tif); "
                        "keep: each input's own")
    p.add_argument("--saturation", type=saturation_type, default=1.0, metavar="FACTOR",
                   help="scale the predicted colour at the same luminance: 1 (default) is the paper's output, "
                        "1.25 to 1.5 stronger colour for about the same PSNR or a little less, 0 grey "
                        "(measured in docs/DESIGN.md, 'Saturation')")
    p.add_argument("--gallery", action="store_true", help="also write OUT/index.html: a contact sheet of small "
                   "thumbnails (input, output, truth) linked to the full files; thumbnails in OUT/.gallery")
    p.add_argument("--truth", metavar="DIR", help="with --gallery: the true colour photos, shown beside the "
                   "outputs with each one's PSNR (paired by relative path, else by unique file name)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than N pixels, against decompression bombs "
                        f"(default {MAX_PIXELS:,}; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.set_defaults(func=cmd_colorize)


def refine_settings(args):
    """The ``[refine]`` table of ``colorize --config``, or None; the other tables are the model's own.

    The features, training and clusters are fixed when a model is trained, so
    those tables are reported as not applied (a warning), never silently
    ignored; a missing or invalid file stops the command (exit status 2).
    """
    if not getattr(args, "config", None):
        return None
    cfgs = configs(args)  # ValueError naming the file: missing, unreadable, not TOML, bad settings
    with open(args.config, "rb") as fh:
        tables = set(tomllib.load(fh))
    fixed = sorted(tables - {"refine"})
    if fixed:
        log.warning("%s: [%s] not applied: fixed when the model was trained (colorize applies [refine] only)",
                    args.config, "], [".join(fixed))
    if "refine" not in tables:
        return None
    if args.method != "deepcolor":
        raise CommandError(f"{args.config}: [refine] applies to deepcolor's models, not to the {args.method} baseline")
    refine = cfgs["refine"]
    for (section, key), top in SETTING_LIMITS.items():
        if section == "refine_config" and getattr(refine, key) > top:
            raise CommandError(f"{args.config}: [refine] {key} = {getattr(refine, key)!r} is above {top}")
    return refine


def _check_args(args, model_dir):
    if not args.model and not (model_dir / "manifest.json").exists():
        raise CommandError("no --model given and no bundled default model is installed; "
                           "train one with 'deepcolor features' and 'deepcolor train'")
    if args.max_pixels < 0:
        raise CommandError(f"--max-pixels must be 0 (no limit) or positive, got {args.max_pixels}")
    if args.method != "deepcolor" and not args.model:
        raise CommandError(f"--method {args.method} needs --model: the folder of a trained {args.method} baseline "
                           f"(deepcolor report saves them in OUT/work/baselines)")
    if args.truth and not args.gallery:
        raise CommandError("--truth is shown in the gallery only: add --gallery")
    if args.truth and not Path(args.truth).is_dir():
        raise CommandError(f"--truth {args.truth}: no such folder")
    check_model_dir(model_dir)


def _open_record(args, problems, ignored):
    """The colorize record's path, its last cut line ended, the planning problems and ignored files in it."""
    record_path = colorize_log_path(args.input, args.output)
    if record_path.is_symlink() or record_path.exists() and not record_path.is_file():
        raise CommandError(f"{record_path}: not a regular file (a symlink?); deepcolor appends its record only "
                           f"to a regular file inside OUT: remove it or choose another OUT")
    end_partial_line(record_path)
    for p in problems:
        log.error("%s", p)
        append_record(record_path, Outcome(p.split(": ", 1)[0], "", "failed", p))
    for path, why in ignored:  # every file accounted for: the record names what is left alone, and why
        append_record(record_path, Outcome(str(path), "", "ignored", f"{display_path(path)}: {why}; left alone"))
    if ignored:
        log.info("%s: %d files or folders are not images or hidden, and were left alone; the record names "
                 "them", display_path(args.input), len(ignored))
    return record_path


def cmd_colorize(args):
    model_dir = Path(args.model) if args.model else DEFAULT_MODEL
    _check_args(args, model_dir)
    refine = refine_settings(args)
    if args.jobs == 1 and args.backend == "loky" or args.method != "deepcolor":
        model = load_colorizer(model_dir, args.method)
    else:  # the workers load it; here only its files are checked, without importing torch (2.6 s)
        verify_model(model_dir)
        model = None
    ignored = []
    pairs, problems = plan_outputs(args.input, args.output, FORMATS[args.format], ignored)
    record_path = _open_record(args, problems, ignored)
    if not pairs and not problems:
        log.warning("%s: no image files found", display_path(args.input))
    start = time.perf_counter()
    counts = {"done": 0, "skipped": 0, "failed": len(problems)}
    outcomes = [Outcome(p.split(": ", 1)[0], "", "failed", p) for p in problems]
    with parallel_backend(args, len(pairs)):
        for outcome in colorize_batch(model, model_dir, pairs, args.jobs, args.overwrite, args.quiet,
                                      args.max_pixels or None, args.method, args.saturation,
                                      root=record_path.parent, refine=refine):
            counts[outcome.status] += 1
            if outcome.status == "failed":
                log.error("%s", outcome.message)
            elif outcome.status == "skipped":
                log.info("%s", outcome.message)
            elif outcome.cluster is not None:
                log.debug("%s: cluster %d (layer %d) of candidates %s", outcome.source, outcome.cluster["cluster"],
                          outcome.cluster["layer"], outcome.cluster["candidates"])
            append_record(record_path, outcome)
            outcomes.append(outcome)
    print(f"colorize: {counts['done']} colorized, {counts['skipped']} skipped (existing), "
          f"{counts['failed']} failed{f', {len(ignored)} ignored (not images, hidden)' if ignored else ''} in "
          f"{time.perf_counter() - start:.1f} s -> {display_path(args.output)}", file=sys.stderr)
    if args.gallery:
        from deepcolor.gallery import write_gallery  # lazy: Pillow and joblib, only for --gallery

        page = write_gallery(record_path.parent, outcomes, truth_dir=args.truth, jobs=args.jobs,
                             title=f"deepcolor colorize {args.input}")
        print(f"gallery: {page}", file=sys.stderr)
    return 1 if counts["failed"] else 0
