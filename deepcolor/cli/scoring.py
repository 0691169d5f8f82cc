"""The commands that score: ``evaluate`` (a folder of outputs against the truths) and ``report``."""

import json
import logging
import sys
from pathlib import Path

from deepcolor.cli.common import configs, jobs_type
from deepcolor.evaluate import evaluate_dirs
from deepcolor.report import run_report

log = logging.getLogger("deepcolor")


def add_evaluate(sub, common, parallel):
    p = sub.add_parser("evaluate", parents=[common], help="PSNR, SSIM, colourfulness against true colour images")
    p.add_argument("--truth", required=True, metavar="DIR", help="the true colour photos (searched "
                   "recursively)")
    p.add_argument("--pred", required=True, metavar="DIR", help="the colorized photos, e.g. colorize's OUT; "
                   "paired with the truths by relative path without suffix, else by unique file name")
    p.add_argument("--out", metavar="DIR", help="write metrics.csv and summary.json here")
    p.add_argument("--jobs", type=jobs_type, default=1, help="parallel worker processes (default 1; -1: all cores)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args):
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


def add_report(sub, common, parallel):
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
    p.add_argument("--jobs", type=jobs_type, default=1, help="parallel worker processes (default 1; -1: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and sampling (default 0)")
    p.set_defaults(func=cmd_report)


def cmd_report(args):
    summary = run_report(args.ref_dirs, args.test, args.out, baselines=args.baselines, limit=args.limit,
                         jobs=args.jobs, seed=args.seed, baseline_epochs=args.baseline_epochs,
                         baseline_images=args.baseline_images, scene_labels=args.scene_labels,
                         configs=configs(args) if args.config else None, quiet=args.quiet)
    width = max(len(r["method"]) for r in summary)
    print(f"{'method':{width}}  PSNR mean  median   SSIM  CF gap  above deepcolor  train s  s/img")
    for r in summary:
        above = "-" if r["better_than_main"] is None else f"{r['better_than_main']:.0%}"
        print(f"{r['method']:{width}}  {r['psnr_mean']:9.2f}  {r['psnr_median']:6.2f}  {r['ssim_mean']:5.3f}  "
              f"{r['cf_gap_mean']:6.1f}  {above:>15}  {r['train_s']:7.0f}  {r['seconds_per_image']:5.3f}")
    print(f"report: {Path(args.out) / 'report.html'}", file=sys.stderr)
    return 0
