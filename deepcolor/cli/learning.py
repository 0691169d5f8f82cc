"""The commands that learn: ``features``, ``train``, ``pick`` and ``parser train``.

Each command is a pair: ``add_<command>(sub, common, parallel)`` declares its
options, ``cmd_<command>(args)`` runs it and returns the exit status.
"""

import sys
import time
from pathlib import Path

from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.cli.common import CommandError, check_model_dir, configs, parallel_backend
from deepcolor.clustering import DESCRIPTORS
from deepcolor.clustering.config import ClusterConfig
from deepcolor.distill import DistillConfig, run as run_distill
from deepcolor.extract import extract_folder
from deepcolor.features import DAISY_BACKENDS, FEATURES
from deepcolor.modelfiles import check_replaceable
from deepcolor.pick import (DEFAULT_DESCRIPTOR, DEFAULT_RULE, PICK_DESCRIPTORS, PICK_RULES, default_cache_dir,
                            pick_references, write_pick)


def add_features(sub, common, parallel):
    p = sub.add_parser("features", parents=[common, parallel], help="sample training pixels from colour references")
    p.add_argument("ref_dirs", nargs="+", metavar="REF_DIR", help="folders (searched recursively) or files")
    p.add_argument("--out", required=True, metavar="FEATURES_DIR", help="folder for the samples (created; "
                   "a rerun reuses what is unchanged)")
    p.add_argument("--features", metavar="NAMES", help=f"comma-separated, from {', '.join(FEATURES)} "
                   "(default: patch,daisy,semantic)")
    p.add_argument("--working-size", type=int, help="longest side in px (default 256)")
    p.add_argument("--pixels-per-image", type=int, help="training pixels sampled per reference (default 2048)")
    p.add_argument("--daisy-backend", choices=DAISY_BACKENDS, help="DAISY implementation (default "
                   "skimage: faster here, same quality; docs/DESIGN.md)")
    p.add_argument("--seed", type=int, help="seed of the pixel sampling (default 0)")
    p.set_defaults(func=cmd_features)


def cmd_features(args):
    cfg = configs(args)["features"].replace(
        features=tuple(args.features.split(",")) if args.features else None,
        working_size=args.working_size, pixels_per_image=args.pixels_per_image,
        daisy_backend=args.daisy_backend, seed=args.seed,
    )
    with parallel_backend(args):
        manifest = extract_folder(args.ref_dirs, args.out, cfg, jobs=args.jobs, quiet=args.quiet)
    counts = manifest["counts"]
    print(f"features: {counts.get('ok', 0)} references sampled ({manifest['reused']} reused), "
          f"{counts.get('near-grey', 0)} grey or near-grey skipped, {counts.get('duplicate', 0)} duplicates, "
          f"{counts.get('failed', 0)} failed -> {args.out}", file=sys.stderr)
    return 1 if counts.get("failed") else 0


def add_train(sub, common, parallel):
    p = sub.add_parser("train", parents=[common, parallel], help="train the colorization network")
    p.add_argument("features_dir", metavar="FEATURES_DIR", help="the output of deepcolor features")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the model (refused if a model "
                   "is there, unless --overwrite); pass it to colorize --model")
    p.add_argument("--seed", type=int, help="seed of the held-out split, the initialisation, the batch order "
                   "and the clustering (default 0)")
    p.add_argument("--hidden", type=int, help="hidden layer width (default 64)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default 60)")
    c = ClusterConfig()
    p.add_argument("--clusters", type=int, metavar="N0", help="clusters of the top layer of the adaptive "
                   f"ensemble (default {c.n_clusters}); 1: one network")
    p.add_argument("--mu", type=int, help=f"minimum reference images per network (default {c.mu})")
    p.add_argument("--epsilon", type=float, metavar="DB", help="error threshold on E = -PSNR: references at "
                   f"PSNR >= -DB leave later layers (default {c.epsilon})")
    p.add_argument("--max-layers", type=int, help=f"at most this many layers (default {c.max_layers})")
    p.add_argument("--descriptor", choices=DESCRIPTORS,
                   help=f"global descriptor of the clustering (default {c.descriptor})")
    p.add_argument("--init", nargs="?", const="default", metavar="MODEL_DIR",
                   help="fine-tune a trained model on these references instead of starting from random weights: "
                        "a few dozen references like your photos are enough (--init alone: the bundled model; "
                        "the features must be made with its feature settings)")
    p.add_argument("--lr", type=float, help="learning rate of Adam (default 1e-3; with --init, the fine-tuning "
                   "rate deepcolor.train.FINETUNE_LR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model in MODEL_DIR")
    p.set_defaults(func=cmd_train)


def cmd_train(args):
    # lazy: deepcolor.train and deepcolor.ensemble import torch (seconds), which other commands and --help avoid
    from deepcolor.ensemble import Model
    from deepcolor.train import FINETUNE_LR, train

    out = Path(args.out)
    if (out / "manifest.json").exists() and not args.overwrite:
        raise CommandError(f"{out}: a model exists here; use --overwrite to replace it")
    check_replaceable(out, "model")  # before training: a model is a folder of its own
    cfgs = configs(args)
    tcfg = cfgs["train"].replace(seed=args.seed, hidden=args.hidden, max_epochs=args.epochs, lr=args.lr)
    ccfg = cfgs["clusters"].replace(n_clusters=args.clusters, mu=args.mu, epsilon=args.epsilon,
                                    max_layers=args.max_layers, descriptor=args.descriptor, seed=args.seed)
    init, init_dir = None, None
    if args.init:  # fine-tuning (issue 17): the initial model's shape, a fine-tuning rate
        init_dir = DEFAULT_MODEL if args.init == "default" else Path(args.init)
        check_model_dir(init_dir)
        init = Model.load(init_dir)
        tcfg = tcfg.replace(lr=args.lr or FINETUNE_LR)
    with parallel_backend(args):
        model = train(args.features_dir, tcfg, ccfg, cfgs["refine"], jobs=args.jobs, quiet=args.quiet, init=init,
                      init_dir=init_dir)
    model.save(out)
    print(train_summary(model, init, init_dir, ccfg, out), file=sys.stderr)
    return 0


def train_summary(model, init, init_dir, cluster_cfg, out):
    """The lines `train` prints: the fine-tuning, the ensemble's layers or the one network's best epoch."""
    info, lines = model.info, []
    if init is not None and info["init"].get("kept_initial_model"):
        r = info["init"]
        return (f"train: kept the initial model {init_dir} unchanged ({len(model.networks)} network"
                f"{'' if len(model.networks) == 1 else 's'} and its selector): its held-out MSE "
                f"{r['initial_model_cv_mse']:.6f} is not above the {r['cv_mse'][r['epochs']]:.6f} of network "
                f"{r['network']} fine-tuned for {r['epochs']} epoch{'' if r['epochs'] == 1 else 's'} "
                f"({r['folds']}-fold cross-validation; {info['train_seconds']:.1f} s) -> {out}")
    if init is not None:
        r = info["init"]
        lines.append(f"train: fine-tuned from network {r['network']} of {init_dir} for {r['epochs']} "
                     f"epoch{'' if r['epochs'] == 1 else 's'}, chosen by "
                     f"{r['folds']}-fold cross-validation (held-out MSE {r['cv_mse'][r['epochs']]:.6f}, the "
                     f"start's {r['cv_mse'][0]:.6f}"
                     + (f", the whole initial model's {r['initial_model_cv_mse']:.6f}" if "initial_model_cv_mse" in r
                        else "") + ")"
                     + ("" if model.is_ensemble else f" ({info['train_seconds']:.1f} s) -> {out}"))
    if model.is_ensemble:
        lines.append(f"train: {len(model.networks)} networks in {info['n_layers']} layer(s) of "
                     f"{info['layer_sizes']} images, reference PSNR by layer {info['layer_mean_psnr']} dB "
                     f"({info['train_seconds']:.1f} s) -> {out}"
                     f"{mu_note(info['n_images'], cluster_cfg, len(model.networks))}")
    elif init is None:
        h = info["history"]
        lines.append(f"train: best held-out MSE {h['best_val_mse']:.6f} at epoch {h['best_epoch'] + 1} "
                     f"of {h['epochs_run']} ({info['train_seconds']:.1f} s) -> {out}")
    return "\n".join(lines)


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


def add_pick(sub, common, parallel):
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
    p.add_argument("--descriptor", choices=PICK_DESCRIPTORS, default=DEFAULT_DESCRIPTOR,
                   help=f"likeness by this global descriptor (default {DEFAULT_DESCRIPTOR}; docs/DESIGN.md)")
    p.add_argument("--rule", choices=PICK_RULES, default=DEFAULT_RULE, help="nearest: by the distance to the "
                   "nearest target; mean: to the targets' mean; each: the targets take turns "
                   f"(default {DEFAULT_RULE})")
    p.add_argument("--cache", metavar="DIR", help="descriptor cache, so that a second pick from the same pool "
                   "is quick (default $DEEPCOLOR_CACHE, else ~/.cache/deepcolor)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the descriptor cache")
    p.set_defaults(func=cmd_pick)


def cmd_pick(args):
    if args.n < 1:
        raise CommandError(f"-n must be a positive number of references, got {args.n}")
    fcfg = configs(args)["features"]
    cache = None if args.no_cache else Path(args.cache) if args.cache else default_cache_dir()
    with parallel_backend(args):
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


def add_parser_train(sub, common, parallel):
    """``deepcolor parser train``: `sub` is the subparsers of ``deepcolor parser``."""
    d = DistillConfig()
    q = sub.add_parser("train", parents=[common], help="distil the grey-image parser from the ADE20K parser "
                       "on the photos and labelled sets of the data folder (make parser)")
    q.add_argument("--teacher", required=True, metavar="TFLITE", help="deeplabv3_mobilenetv2_ade20k.tflite")
    q.add_argument("--data", required=True, metavar="DATA", help="data folder laid out as ../shared/data "
                   "(BSDS500, ImageNet sample, Intel scenes, MSRC-v2, Stanford Background, CamVid)")
    q.add_argument("--out", required=True, metavar="PARSER_DIR", help="folder for the parser (semantic_parser "
                   "names it)")
    q.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the training photos "
                   f"(default {d.epochs})")
    q.add_argument("--input-size", type=int, default=d.input_size, help="square input side, 16 n + 1 "
                   f"(default {d.input_size})")
    q.add_argument("--output-stride", type=int, default=d.output_stride, choices=(8, 16),
                   help=f"the parser's output stride (default {d.output_stride}: faster)")
    q.add_argument("--threads", type=int, default=d.threads, help=f"torch threads (default {d.threads})")
    q.add_argument("--seed", type=int, default=d.seed, help="seed of the photo order and the crops "
                   f"(default {d.seed})")
    q.add_argument("--overwrite", action="store_true", help="replace an existing parser in PARSER_DIR")
    q.set_defaults(func=cmd_parser_train)


def cmd_parser_train(args):
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
    _, info = run_distill(args.teacher, args.data, out, cfg, overwrite=args.overwrite, quiet=args.quiet)
    print(f"parser: validation pixel accuracy {info['val_pixel_accuracy']:.4f} (step {info['best_step']} of "
          f"{info['steps']}, {info['n_train']} photos, {(time.perf_counter() - start) / 60:.0f} min) -> {out}",
          file=sys.stderr)
    return 0
