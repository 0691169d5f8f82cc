"""Colorization quality on every test set of the data folder (issue 16): `make bench` section ``quality``.

Test sets, never references and never used for a choice: BSDS500 test,
ImageNet sample test, Stanford Background test, CamVid test, the MSRC-v2
evaluation split, and the first `intel_per_category` test photos (by name) of
each Intel scenes category. Grey inputs are the 8-bit BT.601 luma of each
truth (`deepcolor.testsets.load_test_set`). For each set: the grey input (zero
chroma), the references' mean chroma, and every model (photos whose truth is exactly grey are left out
and counted): PSNR (RGB, uint8,
native size; mean and median), mean SSIM, mean colourfulness (Hasler and
Suesstrunk) beside the truth's.

``python -m deepcolor.bench_quality --model NAME=DIR [...] --out FILE.json``
scores models outside `make bench`.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from deepcolor.bench_pipeline import references_mean_chroma
from deepcolor.color import combine_luma_chroma, to_uint8
from deepcolor.colorize import colorize_luma
from deepcolor.extract import load_manifest
from deepcolor.features.labelsets import labelled_pairs
from deepcolor.images.formats import find_images
from deepcolor.images.picture import ImageError
from deepcolor.metrics import colourfulness, psnr, ssim
from deepcolor.modelfiles import ModelError
from deepcolor.testsets import load_test_set, score_constant_chroma

INTEL_CATEGORIES = ("buildings", "forest", "glacier", "mountain", "sea", "street")


def test_sets(data, intel_per_category=100, names=None):
    """{set name: [photo paths]} of the data folder's test sets (those whose folders exist)."""
    data = Path(data)
    sets = {}

    def add(name, fn):
        if names is not None and name not in names:
            return
        try:
            paths = fn()
        except (ImageError, ValueError, OSError):  # a set whose folder is not there
            return
        if paths:
            sets[name] = paths

    add("bsds500_test", lambda: find_images(data / "bsds500" / "test"))
    add("imagenet_test", lambda: find_images(data / "imagenet_sample" / "test"))
    add("stanford_test", lambda: [p for p, _ in labelled_pairs(data, "stanford", "test")])
    add("camvid_test", lambda: [p for p, _ in labelled_pairs(data, "camvid", "test")])
    add("msrc_eval", lambda: [p for p, _ in labelled_pairs(data, "msrc", "eval")])
    for c in INTEL_CATEGORIES:
        add(f"intel_{c}", lambda c=c: sorted(find_images(data / "intel_scenes" / "test" / c))[:intel_per_category])
    return sets


def validation_sets(data, per_category=40, seed=0):
    """{set name: [photo paths]} for choices: photos that neither the references nor the parser saw.

    ``val_intel``: per Intel scenes category, the photos 200 to 200 + `per_category` of the train
    folder in the seeded order that `deepcolor.refsets` (the first 100) and `deepcolor.distill` (the
    first 200) draw from; ``val_camvid``: CamVid val (the parser's distillation chose its best
    step on half of it, no weights were fitted to it).
    """
    data = Path(data)
    rng = random.Random(seed)
    out = {"val_intel": []}
    for c in INTEL_CATEGORIES:
        found = sorted(find_images(data / "intel_scenes" / "train" / c))
        rng.shuffle(found)
        out["val_intel"] += sorted(found[200:200 + per_category])
    out["val_camvid"] = [p for p, _ in labelled_pairs(data, "camvid", "val")]
    return out


def _stats(values):
    values = np.asarray(values, np.float64)
    return round(float(values.mean()), 3), round(float(np.median(values)), 3)


def score_set(models, items, mean_uv):
    """Scores of the grey input, the mean chroma and each model of `models` ({name: Model}) on `items`."""
    n_all = len(items)
    # A truth with R = G = B everywhere is a grey photo: nothing to colour, and the grey input's PSNR is infinite.
    items = [it for it in items if not (np.all(it[2][..., 0] == it[2][..., 1]) and np.all(it[2][..., 1] == it[2][..., 2]))]
    out = {"n": len(items), "n_grey_truth_left_out": n_all - len(items),
           "truth_colourfulness": round(float(np.mean([colourfulness(t) for _, _, t in items])), 2)}
    for name, uv in (("grey", (0.0, 0.0)), ("mean_colour", mean_uv)):
        values = score_constant_chroma(items, uv)
        out[name] = {"psnr_mean": _stats(values)[0], "psnr_median": _stats(values)[1]}
        if name == "mean_colour":
            chroma = np.asarray(uv, np.float32)
            out[name]["colourfulness"] = round(float(np.mean([colourfulness(to_uint8(combine_luma_chroma(
                y, np.broadcast_to(chroma, y.shape + (2,))))) for _, y, _ in items])), 2)
    for name, model in models.items():
        ps, ss, cf, secs = [], [], [], []
        for _, y, truth in items:
            t = time.perf_counter()
            rgb = colorize_luma(model, y)
            secs.append(time.perf_counter() - t)
            ps.append(psnr(truth, rgb))
            ss.append(ssim(truth, rgb))
            cf.append(colourfulness(rgb))
        mean, median = _stats(ps)
        out[name] = {"psnr_mean": mean, "psnr_median": median, "ssim_mean": round(float(np.mean(ss)), 4),
                     "colourfulness": round(float(np.mean(cf)), 2), "seconds_per_image": round(float(np.median(secs)), 4),
                     "minus_mean_colour_db": round(mean - out["mean_colour"]["psnr_mean"], 3),
                     "minus_grey_db": round(mean - out["grey"]["psnr_mean"], 3)}
    return out


def score_sets(models, sets, mean_uv, progress=None):
    """`score_set` on every test set of `sets` ({name: paths})."""
    out = {}
    for name, paths in sets.items():
        out[name] = score_set(models, load_test_set(paths), mean_uv)
        if progress:
            progress(name, out[name])
    return out


def main(argv=None):
    from deepcolor.ensemble import Model  # lazy: imports torch
    ap = argparse.ArgumentParser(prog="python -m deepcolor.bench_quality", description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--features", type=Path, required=True, help="the references' features folder (mean chroma)")
    ap.add_argument("--sets", nargs="*", help="test sets to score (default: all)")
    ap.add_argument("--validation", action="store_true", help="score the validation sets instead")
    ap.add_argument("--intel-per-category", type=int, default=100)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch  # lazy: torch is heavy

    torch.set_num_threads(1)
    models = {}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        if not name or not folder:
            ap.error(f"--model must be NAME=MODEL_DIR, got {spec!r}")
        try:
            models[name] = Model.load(folder)
        except ModelError as exc:
            ap.error(str(exc))
    try:
        load_manifest(args.features)
    except ValueError as exc:
        ap.error(str(exc))
    mean_uv = references_mean_chroma(args.features)
    sets = validation_sets(args.data) if args.validation else test_sets(args.data, args.intel_per_category, args.sets)
    report = {"models": dict(spec.partition("=")[::2] for spec in args.model),
              "mean_chroma_uv": [round(float(v), 5) for v in mean_uv], "sets": {}}

    def show(name, r):
        report["sets"][name] = r
        print(name, json.dumps({k: (v.get("psnr_mean"), v.get("colourfulness")) if isinstance(v, dict) else v
                                for k, v in r.items()}), file=sys.stderr, flush=True)
        if args.out:
            args.out.write_text(json.dumps(report, indent=1))

    score_sets(models, sets, mean_uv, progress=show)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
