"""Command line: ``deepcolor {features,train,colorize,evaluate,parser}``.

Exit status: 0 when everything succeeded, 1 when some files failed (each is
named on stderr and counted in the final summary), 2 for a usage error or a
failure that stops the whole command (a missing folder, a corrupt model).
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from deepcolor import __version__

log = logging.getLogger("deepcolor")

DEFAULT_MODEL = Path(__file__).parent / "models" / "default"


class CommandError(Exception):
    """A failure that stops the command; its message is printed as is."""


def _setup_logging(verbose, quiet):
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    # The handler filters too: libraries that set their own loggers' level (dask.distributed
    # logs at INFO whatever the root's level) print nothing below it, so -q is quiet.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)


def _configs(args):
    from deepcolor.config import CONFIG_SECTIONS, load_toml

    if getattr(args, "config", None):
        return load_toml(args.config)
    return {name: cls() for name, cls in CONFIG_SECTIONS.items()}


def cmd_features(args):
    from deepcolor.extract import extract_folder

    cfg = _configs(args)["features"].replace(
        features=tuple(args.features.split(",")) if args.features else None,
        working_size=args.working_size, pixels_per_image=args.pixels_per_image,
        daisy_backend=args.daisy_backend, seed=args.seed,
    )
    with _backend(args):
        manifest = extract_folder(args.ref_dirs, args.out, cfg, jobs=args.jobs, quiet=args.quiet)
    counts = manifest["counts"]
    print(f"features: {counts.get('ok', 0)} references sampled ({manifest['reused']} reused), "
          f"{counts.get('near-grey', 0)} grey or near-grey skipped, {counts.get('duplicate', 0)} duplicates, "
          f"{counts.get('failed', 0)} failed -> {args.out}", file=sys.stderr)
    return 1 if counts.get("failed") else 0


def cmd_train(args):
    from deepcolor.train import train

    out = Path(args.out)
    if (out / "manifest.json").exists() and not args.overwrite:
        raise CommandError(f"{out}: a model exists here; use --overwrite to replace it")
    from deepcolor.modelfiles import check_replaceable

    check_replaceable(out, "model")  # before training: a model is a folder of its own
    cfgs = _configs(args)
    tcfg = cfgs["train"].replace(seed=args.seed, hidden=args.hidden, max_epochs=args.epochs, lr=args.lr)
    ccfg = cfgs["clusters"].replace(n_clusters=args.clusters, mu=args.mu, epsilon=args.epsilon,
                                    max_layers=args.max_layers, descriptor=args.descriptor, seed=args.seed)
    init, init_dir = None, None
    if args.init:  # fine-tuning (issue 17): the initial model's shape, a fine-tuning rate
        from deepcolor.ensemble import Model
        from deepcolor.train import FINETUNE_LR

        init_dir = DEFAULT_MODEL if args.init == "default" else Path(args.init)
        _check_model_dir(init_dir)
        init = Model.load(init_dir)
        tcfg = tcfg.replace(lr=args.lr or FINETUNE_LR)
    with _backend(args):
        model = train(args.features_dir, tcfg, ccfg, cfgs["refine"], jobs=args.jobs, quiet=args.quiet, init=init,
                      init_dir=init_dir)
    model.save(out)
    info = model.info
    if init is not None:
        r = info["init"]
        print(f"train: fine-tuned from network {r['network']} of {init_dir} for {r['epochs']} "
              f"epoch{'' if r['epochs'] == 1 else 's'}, chosen by "
              f"{r['folds']}-fold cross-validation (held-out MSE {r['cv_mse'][r['epochs']]:.6f}, the start's "
              f"{r['cv_mse'][0]:.6f})" + ("" if model.is_ensemble else f" ({info['train_seconds']:.1f} s) -> {out}"),
              file=sys.stderr)
    if model.is_ensemble:
        print(f"train: {len(model.networks)} networks in {info['n_layers']} layer(s) of "
              f"{info['layer_sizes']} images, reference PSNR by layer {info['layer_mean_psnr']} dB "
              f"({info['train_seconds']:.1f} s) -> {out}{mu_note(info['n_images'], ccfg, len(model.networks))}",
              file=sys.stderr)
    elif init is None:
        h = info["history"]
        print(f"train: best held-out MSE {h['best_val_mse']:.6f} at epoch {h['best_epoch'] + 1} "
              f"of {h['epochs_run']} ({info['train_seconds']:.1f} s) -> {out}", file=sys.stderr)
    return 0


def mu_note(n_images, cluster_cfg, n_networks):
    """The train summary's note when mu leaves the ensemble one network: why, and the --mu that would not."""
    mu, n0 = cluster_cfg.mu, cluster_cfg.n_clusters
    if n_networks > 1 or n_images // mu >= 2:
        return ""
    hint = f"--mu {n_images // 2} allows 2" if n_images // 2 >= 2 else "more references are needed for 2"
    if n0 > 2 and n_images // n0 >= 2:
        hint += f", --mu {n_images // n0} up to {n0} (--clusters)"
    return (f"\ntrain: note: one network only: {n_images} usable references and mu {mu} (at least mu "
            f"references per network) leave room for one cluster; a smaller mu makes an ensemble "
            f"({hint})")


def cmd_pick(args):
    from deepcolor.pick import default_cache_dir, pick_references, write_pick

    if args.n < 1:
        raise CommandError(f"-n must be a positive number of references, got {args.n}")
    fcfg = _configs(args)["features"]
    cache = None if args.no_cache else Path(args.cache) if args.cache else default_cache_dir()
    with _backend(args):
        result = pick_references(args.targets, args.pool, args.n, fcfg, args.descriptor, args.rule,
                                 cache_dir=cache, jobs=args.jobs, quiet=args.quiet)
    links = write_pick(args.out, result, {"targets": args.targets, "pool": args.pool, "n": args.n,
                                          "cache": None if cache is None else str(cache)})
    c = result["counts"]
    print(f"pick: {c['picked']} of {c['candidates']} colour photos in the pool ({c['grey']} grey or near-grey, "
          f"{c['duplicate']} duplicates left out; {c['cached']} descriptors from the cache) like "
          f"{c['targets']} targets, in {result['seconds']:.1f} s -> {links}\n"
          f"pick: next: deepcolor features {links} --out FEATURES_DIR; "
          f"deepcolor train FEATURES_DIR --init --out MODEL_DIR", file=sys.stderr)
    return 1 if c["failed"] else 0


FORMATS = {"png": ".png", "jpg": ".jpg", "tif": ".tif", "webp": ".webp", "bmp": ".bmp", "keep": None}
FORMAT_ALIASES = {"jpeg": "jpg", "tiff": "tif"}


def _format(value):
    """--format's type: lower case, 'jpeg' and 'tiff' as 'jpg' and 'tif' (choices are checked after)."""
    value = value.lower()
    return FORMAT_ALIASES.get(value, value)


def _jobs(value):
    """--jobs' type: a non-zero int (a usage error names the subcommand's usage)."""
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int, got {value!r}") from None
    if jobs == 0:
        raise argparse.ArgumentTypeError("must not be 0 (1: this process; N: N workers; -1: all cores)")
    return jobs


def _saturation(value):
    """--saturation's type: a finite float >= 0."""
    import math

    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value!r}") from None
    if not math.isfinite(factor) or factor < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value!r}")
    return factor


def _check_model_dir(model_dir):
    """A CommandError with the way on when MODEL_DIR is something else than a model (a features folder)."""
    manifest = Path(model_dir) / "manifest.json"
    if not manifest.is_file():  # a FIFO or device would block or never end: the model loader refuses it
        return
    try:
        kind = json.loads(manifest.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return  # no readable manifest: the model loader says what is wrong
    if kind == "deepcolor-features":
        raise CommandError(f"{model_dir}: this is a features folder (made by 'deepcolor features'), not a "
                           f"model: run 'deepcolor train {model_dir} --out MODEL_DIR' and pass --model MODEL_DIR")


def _colorize_refine(args):
    """The ``[refine]`` table of ``colorize --config``, or None; the other tables are the model's own.

    The features, training and clusters are fixed when a model is trained, so
    those tables are reported as not applied (a warning), never silently
    ignored; a missing or invalid file stops the command (exit status 2).
    """
    if not getattr(args, "config", None):
        return None
    import tomllib

    from deepcolor.modelcheck import SETTING_LIMITS

    cfgs = _configs(args)  # ValueError naming the file: missing, unreadable, not TOML, bad settings
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


def cmd_colorize(args):
    from deepcolor.colorize import Outcome, colorize_batch, plan_outputs

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL
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
    _check_model_dir(model_dir)
    refine = _colorize_refine(args)
    if args.jobs == 1 and args.backend == "loky" or args.method != "deepcolor":
        from deepcolor.colorize import load_colorizer

        model = load_colorizer(model_dir, args.method)
    else:  # the workers load it; here only its files are checked, without importing torch (2.6 s)
        from deepcolor.modelcheck import verify_model

        verify_model(model_dir)
        model = None
    ignored = []
    pairs, problems = plan_outputs(args.input, args.output, FORMATS[args.format], ignored)
    record_path = colorize_log_path(args.input, args.output)
    if record_path.is_symlink() or record_path.exists() and not record_path.is_file():
        raise CommandError(f"{record_path}: not a regular file (a symlink?); deepcolor appends its record only "
                           f"to a regular file inside OUT: remove it or choose another OUT")
    end_partial_line(record_path)
    for p in problems:
        log.error("%s", p)
        append_record(record_path, Outcome(p.split(": ", 1)[0], "", "failed", p))
    from deepcolor.io import display_path

    for path, why in ignored:  # every file accounted for: the record names what is left alone, and why
        append_record(record_path, Outcome(str(path), "", "ignored", f"{display_path(path)}: {why}; left alone"))
    if ignored:
        log.info("%s: %d files or folders are not images or hidden, and were left alone; the record names "
                 "them", display_path(args.input), len(ignored))
    if not pairs and not problems:
        log.warning("%s: no image files found", display_path(args.input))
    start = time.perf_counter()
    counts = {"done": 0, "skipped": 0, "failed": len(problems)}
    outcomes = [Outcome(p.split(": ", 1)[0], "", "failed", p) for p in problems]
    with _backend(args, len(pairs)):
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
        from deepcolor.gallery import write_gallery

        page = write_gallery(record_path.parent, outcomes, truth_dir=args.truth, jobs=args.jobs,
                             title=f"deepcolor colorize {args.input}")
        print(f"gallery: {page}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def _backend(args, n_tasks=None):
    """The parallel backend of `args` (--backend, --scheduler) as a context manager."""
    from contextlib import nullcontext

    from deepcolor.parallel import backend

    if args.backend == "loky" and not args.scheduler:
        return nullcontext()
    if args.backend == "dask" and n_tasks == 0:
        return nullcontext()  # nothing to do: no cluster to start
    return backend(args.backend, args.scheduler, n_workers=None if args.jobs < 1 else args.jobs)


COLORIZE_LOG = "deepcolor-colorize.jsonl"


def colorize_log_path(src, dst):
    """Where `colorize` records each file: OUT/deepcolor-colorize.jsonl (beside a single output file)."""
    dst = Path(dst)
    from deepcolor.io import IMAGE_EXTENSIONS

    folder = dst.parent if Path(src).is_file() and dst.suffix.lower() in IMAGE_EXTENSIONS else dst
    return folder / COLORIZE_LOG


def append_record(path, outcome):
    """Append one JSON line (time, source, output, status, message, seconds, cluster) to the colorize record.

    The line goes out in one ``write`` on a file opened for appending, so a
    killed run leaves whole lines (at most the last one cut short, which
    readers skip) and a rerun adds its own.
    """
    import os
    from dataclasses import asdict

    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **asdict(outcome)}) + "\n"
    # O_NOFOLLOW: a symlink planted as the record is never followed out of OUT
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def end_partial_line(path):
    """End the last line of a colorize log that a killed run left cut short."""
    path = Path(path)
    if path.is_file() and not path.is_symlink() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            last = fh.read(1)
        if last != b"\n":
            with open(path, "ab") as fh:
                fh.write(b"\n")


def read_records(path):
    """The records of a colorize log: a list of dicts, a line cut short by a kill skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.debug("%s: skipped a partial line", path)
    return records


def cmd_evaluate(args):
    from deepcolor.evaluate import evaluate_dirs

    result = evaluate_dirs(args.truth, args.pred, args.out, n_jobs=args.jobs)
    for failure in result.failures:
        log.error("%s", failure)
    for warning in result.warnings:
        log.warning("%s", warning)
    print(json.dumps(result.summary, indent=1, default=str))
    s = result.summary
    by_path, by_name = s["pairing"]["relative path"], s["pairing"]["file name"]
    rule = (f"{by_path} by relative path, {by_name} by file name (the folders' trees differ)" if by_name
            else "all by relative path")
    print(f"evaluate: {s['count']} pairs ({rule}); PSNR {s['psnr_mean']:.2f} dB against {s['psnr_grey_mean']:.2f} "
          f"for the grey input and {s['psnr_mean_colour_mean']:.2f} for the truths' mean colour; "
          f"{s['n_failures']} failed" + (f" -> {args.out}" if args.out else ""), file=sys.stderr)
    return 1 if result.failures else 0


def cmd_report(args):
    from deepcolor.report import run_report

    summary = run_report(args.ref_dirs, args.test, args.out, baselines=args.baselines, limit=args.limit,
                         jobs=args.jobs, seed=args.seed, baseline_epochs=args.baseline_epochs,
                         baseline_images=args.baseline_images, scene_labels=args.scene_labels,
                         configs=_configs(args) if args.config else None, quiet=args.quiet)
    width = max(len(r["method"]) for r in summary)
    print(f"{'method':{width}}  PSNR mean  median   SSIM  CF gap  above deepcolor  train s  s/img")
    for r in summary:
        above = "-" if r["better_than_main"] is None else f"{r['better_than_main']:.0%}"
        print(f"{r['method']:{width}}  {r['psnr_mean']:9.2f}  {r['psnr_median']:6.2f}  {r['ssim_mean']:5.3f}  "
              f"{r['cf_gap_mean']:6.1f}  {above:>15}  {r['train_s']:7.0f}  {r['seconds_per_image']:5.3f}")
    print(f"report: {Path(args.out) / 'report.html'}", file=sys.stderr)
    return 0


def cmd_parser_train(args):
    from deepcolor.distill import DistillConfig, run

    out = Path(args.out)
    if (out / "manifest.json").exists() and not args.overwrite:
        raise CommandError(f"{out}: a parser exists here; use --overwrite to replace it")
    try:
        cfg = DistillConfig(input_size=args.input_size, output_stride=args.output_stride, epochs=args.epochs,
                            threads=args.threads, seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if not Path(args.teacher).is_file():
        raise CommandError(f"{args.teacher}: no such ADE20K parser file (deeplabv3_mobilenetv2_ade20k.tflite)")
    if not Path(args.data).is_dir():
        raise CommandError(f"{args.data}: no such data folder")
    start = time.perf_counter()
    _, info = run(args.teacher, args.data, out, cfg, overwrite=args.overwrite, quiet=args.quiet)
    print(f"parser: validation pixel accuracy {info['val_pixel_accuracy']:.4f} (step {info['best_step']} of "
          f"{info['steps']}, {info['n_train']} photos, {(time.perf_counter() - start) / 60:.0f} min) -> {out}",
          file=sys.stderr)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="deepcolor",
        description="Deep Colorization (Cheng, Yang, Sheng, ICCV 2015): train on colour photos, "
                    "colorize grey ones.")
    parser.add_argument("--version", action="version", version=f"deepcolor {__version__}")
    # -v and -q also before the command (deepcolor -v colorize ...); their own dests, since a
    # subcommand's defaults would overwrite the top level's value of the same dest
    parser.add_argument("-v", "--verbose", action="store_true", dest="top_verbose", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", dest="top_quiet",
                        help="no progress bar, warnings and errors only")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings and errors only")
    common.add_argument("--config", metavar="TOML", help="settings file with [features], [train], [refine] and "
                        "[clusters] tables (keys: the fields of deepcolor.config's FeatureConfig, TrainConfig, "
                        "RefineConfig, ClusterConfig); options given on the command line win")
    parallel = argparse.ArgumentParser(add_help=False)
    parallel.add_argument("--jobs", type=_jobs, default=1, help="parallel worker processes (default 1; -1: all cores)")
    parallel.add_argument("--backend", choices=("loky", "dask"), default="loky",
                          help="loky: worker processes here (default); dask: a dask.distributed cluster")
    parallel.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (tcp://host:8786); "
                          "without one, --backend dask starts a local cluster of --jobs workers")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # none: the help is printed
    from deepcolor.features import FEATURES  # the registry (numpy, scikit-image): --help stays fast

    p = sub.add_parser("features", parents=[common, parallel], help="sample training pixels from colour references")
    p.add_argument("ref_dirs", nargs="+", metavar="REF_DIR", help="folders (searched recursively) or files")
    p.add_argument("--out", required=True, metavar="FEATURES_DIR", help="folder for the samples (created; "
                   "a rerun reuses what is unchanged)")
    p.add_argument("--features", metavar="NAMES", help=f"comma-separated, from {', '.join(FEATURES)} "
                   "(default: patch,daisy,semantic)")
    p.add_argument("--working-size", type=int, help="longest side in px (default 256)")
    p.add_argument("--pixels-per-image", type=int, help="training pixels sampled per reference (default 2048)")
    p.add_argument("--daisy-backend", choices=("skimage", "opencv"), help="DAISY implementation (default "
                   "skimage: faster here, same quality; docs/DESIGN.md)")
    p.add_argument("--seed", type=int, help="seed of the pixel sampling (default 0)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", parents=[common, parallel], help="train the colorization network")
    p.add_argument("features_dir", metavar="FEATURES_DIR", help="the output of deepcolor features")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the model (refused if a model "
                   "is there, unless --overwrite); pass it to colorize --model")
    p.add_argument("--seed", type=int, help="seed of the held-out split, the initialisation, the batch order "
                   "and the clustering (default 0)")
    p.add_argument("--hidden", type=int, help="hidden layer width (default 64)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default 60)")
    from deepcolor.config import ClusterConfig  # dataclasses only: --help stays fast

    c = ClusterConfig.__dataclass_fields__
    p.add_argument("--clusters", type=int, metavar="N0", help="clusters of the top layer of the adaptive "
                   f"ensemble (default {c['n_clusters'].default}); 1: one network")
    p.add_argument("--mu", type=int, help=f"minimum reference images per network (default {c['mu'].default})")
    p.add_argument("--epsilon", type=float, metavar="DB", help="error threshold on E = -PSNR: references at "
                   f"PSNR >= -DB leave later layers (default {c['epsilon'].default})")
    p.add_argument("--max-layers", type=int, help=f"at most this many layers (default {c['max_layers'].default})")
    p.add_argument("--descriptor", choices=("gist", "semantic", "gist+semantic"),
                   help=f"global descriptor of the clustering (default {c['descriptor'].default})")
    p.add_argument("--init", nargs="?", const="default", metavar="MODEL_DIR",
                   help="fine-tune a trained model on these references instead of starting from random weights: "
                        "a few dozen references like your photos are enough (--init alone: the bundled model; "
                        "the features must be made with its feature settings)")
    p.add_argument("--lr", type=float, help="learning rate of Adam (default 1e-3; with --init, the fine-tuning "
                   "rate deepcolor.train.FINETUNE_LR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model in MODEL_DIR")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pick", parents=[common, parallel], help="choose the references of a pool most like "
                       "your grey photos, for a personal model (deepcolor features, then train --init)")
    p.add_argument("targets", nargs="+", metavar="TARGET_DIR", help="the photos to colorize (folders, searched "
                   "recursively, or files; grey or colour)")
    p.add_argument("--pool", nargs="+", required=True, metavar="POOL_DIR", help="colour photos to choose from "
                   "(folders or files, any number)")
    p.add_argument("--out", required=True, metavar="PICK_DIR", help="writes PICK_DIR/references/ (links to the "
                   "picked photos, for 'deepcolor features PICK_DIR/references'), picked.txt and pick.json")
    p.add_argument("-n", "--n", type=int, default=50, dest="n", metavar="N",
                   help="how many references to pick (default 50)")
    from deepcolor.pick import DEFAULT_DESCRIPTOR, DEFAULT_RULE, PICK_DESCRIPTORS, PICK_RULES  # numpy only

    p.add_argument("--descriptor", choices=PICK_DESCRIPTORS, default=DEFAULT_DESCRIPTOR,
                   help=f"likeness by this global descriptor (default {DEFAULT_DESCRIPTOR}; docs/DESIGN.md)")
    p.add_argument("--rule", choices=PICK_RULES, default=DEFAULT_RULE, help="nearest: by the distance to the "
                   "nearest target; mean: to the targets' mean; each: the targets take turns "
                   f"(default {DEFAULT_RULE})")
    p.add_argument("--cache", metavar="DIR", help="descriptor cache, so that a second pick from the same pool "
                   "is quick (default $DEEPCOLOR_CACHE, else ~/.cache/deepcolor)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the descriptor cache")
    p.set_defaults(func=cmd_pick)

    p = sub.add_parser("colorize", parents=[common, parallel], help="colorize a grey photo or a folder of them")
    p.add_argument("input", metavar="IN", help="an image file or a folder (searched recursively)")
    p.add_argument("output", metavar="OUT", help="output folder (the input tree is mirrored), or a file")
    p.add_argument("--model", metavar="MODEL_DIR", help="trained model (default: the bundled one)")
    from deepcolor.colorize import METHODS

    p.add_argument("--method", choices=METHODS, default="deepcolor",
                   help="deepcolor (default), or a baseline trained by deepcolor report (with --model)")
    p.add_argument("--format", type=_format, choices=tuple(FORMATS), default="png",
                   help="output format (default png: lossless, 16-bit and alpha kept; jpeg = jpg, tiff = tif); "
                        "keep: each input's own")
    p.add_argument("--saturation", type=_saturation, default=1.0, metavar="FACTOR",
                   help="scale the predicted colour at the same luminance: 1 (default) is the paper's output, "
                        "1.25 to 1.5 stronger colour for about the same PSNR or a little less, 0 grey "
                        "(measured in docs/DESIGN.md, 'Saturation')")
    p.add_argument("--gallery", action="store_true", help="also write OUT/index.html: a contact sheet of small "
                   "thumbnails (input, output, truth) linked to the full files; thumbnails in OUT/.gallery")
    p.add_argument("--truth", metavar="DIR", help="with --gallery: the true colour photos, shown beside the "
                   "outputs with each one's PSNR (paired by relative path, else by unique file name)")
    from deepcolor.io import MAX_PIXELS  # numpy only: --help stays fast

    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than N pixels, against decompression bombs "
                        f"(default {MAX_PIXELS:,}; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.set_defaults(func=cmd_colorize)

    p = sub.add_parser("evaluate", parents=[common], help="PSNR, SSIM, colourfulness against true colour images")
    p.add_argument("--truth", required=True, metavar="DIR", help="the true colour photos (searched "
                   "recursively)")
    p.add_argument("--pred", required=True, metavar="DIR", help="the colorized photos, e.g. colorize's OUT; "
                   "paired with the truths by relative path without suffix, else by unique file name")
    p.add_argument("--out", metavar="DIR", help="write metrics.csv and summary.json here")
    p.add_argument("--jobs", type=_jobs, default=1, help="parallel worker processes (default 1; -1: all cores)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", parents=[common], help="the ablation and the baselines on one split: "
                       "HTML report, CSV, JSON")
    p.add_argument("ref_dirs", nargs="+", metavar="REF_DIR", help="colour reference photos (recursive)")
    p.add_argument("--test", required=True, metavar="DIR", help="colour test photos (their grey versions are "
                   "colorized)")
    p.add_argument("--out", required=True, metavar="DIR", help="report.html, summary.csv/json, per_image.csv")
    p.add_argument("--baselines", nargs="*", metavar="NAME", help="baselines to compare (default: all; none: "
                   "give the option alone)")
    p.add_argument("--baseline-epochs", type=int, metavar="N", help="most epochs of every baseline (default: "
                   "each one's own); each stops earlier after 5 epochs without a lower held-out loss")
    p.add_argument("--baseline-images", type=int, metavar="N", help="train the baselines on a seeded subset "
                   "of N references (default: all)")
    p.add_argument("--scene-labels", action="store_true", help="the references' folder names are scene "
                   "categories (Intel scenes): Iizuka et al.'s classification loss uses them")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N test photos")
    p.add_argument("--jobs", type=_jobs, default=1, help="parallel worker processes (default 1; -1: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and sampling (default 0)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("parser", help="make the grey-image scene parser (the ADE20K parser adapted to grey)")
    psub = p.add_subparsers(dest="parser_command", metavar="STEP")  # none: the help is printed
    p.set_defaults(func=None)
    q = psub.add_parser("train", parents=[common], help="distil the grey-image parser from the ADE20K parser "
                        "on the photos and labelled sets of the data folder (make parser)")
    q.add_argument("--teacher", required=True, metavar="TFLITE", help="deeplabv3_mobilenetv2_ade20k.tflite")
    q.add_argument("--data", required=True, metavar="DATA", help="data folder laid out as ../shared/data "
                   "(BSDS500, ImageNet sample, Intel scenes, MSRC-v2, Stanford Background, CamVid)")
    q.add_argument("--out", required=True, metavar="PARSER_DIR", help="folder for the parser (semantic_parser "
                   "names it)")
    q.add_argument("--epochs", type=int, default=3, help="passes over the training photos (default 3)")
    q.add_argument("--input-size", type=int, default=257, help="square input side, 16 n + 1 (default 257)")
    q.add_argument("--output-stride", type=int, default=16, choices=(8, 16),
                   help="the parser's output stride (default 16: faster)")
    q.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    q.add_argument("--seed", type=int, default=0, help="seed of the photo order and the crops (default 0)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing parser in PARSER_DIR")
    q.set_defaults(func=cmd_parser_train)
    for p in [*sub.choices.values(), *psub.choices.values()]:  # each command's usage for its own errors
        p.set_defaults(_parser=p)
    return parser


def main(argv=None):
    parser = build_parser()
    # --help and --version end here, before torch is imported; an unknown option is named with
    # the usage of the subcommand it was given to
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "func", None) is None:  # `deepcolor` or `deepcolor parser` alone: the help
        getattr(args, "_parser", parser).print_help()
        return 0
    from deepcolor.io import ImageError
    from deepcolor.modelfiles import ModelError  # torch-free: deepcolor.ensemble imports torch

    args.verbose = args.verbose or args.top_verbose
    args.quiet = args.quiet or args.top_quiet
    _setup_logging(args.verbose, args.quiet)
    try:
        return args.func(args)
    except (CommandError, ModelError, ImageError, ValueError, OSError, ImportError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
