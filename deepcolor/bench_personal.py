"""`make bench` section ``personal`` (issue 17): a personal model against the generic one.

On the Intel scenes, each of the six categories plays an archive: its first
`n_test` test photos (sorted by name), seen only as grey, are colorized and
scored (PSNR, and the colourfulness of Hasler and Suesstrunk) by

1. ``bundled``: the generic model (by default the one bundled with deepcolor);
2. ``fine_tuned``: a personal model fine-tuned from it (`deepcolor.train.fine_tune`)
   on `n_refs` training photos of the category (every 7th, sorted by name);
3. ``picked``: the same fine-tuning on `n_refs` references that
   `deepcolor.pick` chose from the pool (the whole Intel training set, the
   ImageNet sample's train photos, BSDS500 train and val), given the first
   `n_targets` grey test photos of the category;
4. ``scratch``: a model trained from scratch with the default settings on the
   references of (2), as ``deepcolor train`` does.

(2) is also scored at ``--saturation`` 1.25 and 1.5 (colour against PSNR).

The wall time of each personal model's build (pick, features, fine-tuning)
is recorded, and the pool's one-time description (the descriptor cache).
With ``split="val"`` the same runs score photos of the *training* set
instead (every 7th from the 4th, none of them a reference or in the pool):
the data that the fine-tuning and picking settings were chosen on.
"""

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.colorize import colorize_luma_record
from deepcolor.clustering.config import ClusterConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.extract import extract_folder
from deepcolor.images.formats import find_images
from deepcolor.metrics import colourfulness, psnr
from deepcolor.pick import DEFAULT_DESCRIPTOR, DEFAULT_RULE, describe_images, pick_references, write_pick
from deepcolor.testsets import default_data_dir, load_test_set, write_grey_inputs

CATEGORIES = ("buildings", "forest", "glacier", "mountain", "sea", "street")
METHODS = ("bundled", "fine_tuned", "picked", "scratch")
SATURATIONS = (1.25, 1.5)  # the fine-tuned model is also scored at these --saturation factors


def category_split(data, category, split="test", n_refs=50, n_test=100):
    """(references, scored photos) of one Intel category: lists of Path.

    References: every 7th training photo from the first, sorted by name.
    Scored: the first `n_test` test photos (``split="test"``), or every 7th
    training photo from the fourth (``split="val"``).
    """
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    train = find_images(Path(data) / "intel_scenes" / "train" / category)
    refs = train[::7][:n_refs]
    if split == "test":
        scored = find_images(Path(data) / "intel_scenes" / "test" / category)[:n_test]
    else:
        scored = train[3::7][:n_test]
    return refs, scored


def pool_folders(data):
    """The pool of `deepcolor pick` in the acceptance: Intel train, ImageNet sample train, BSDS500 train and val."""
    data = Path(data)
    return [data / "intel_scenes" / "train", data / "imagenet_sample" / "train", data / "bsds500" / "train",
            data / "bsds500" / "val"]


def score(model, items, saturation=1.0):
    """Mean PSNR and mean colourfulness of `model` on `items` (`deepcolor.testsets.load_test_set`), and per image.

    `saturation`: as ``deepcolor colorize --saturation``.
    """
    p, c = [], []
    for _, y, truth in items:
        rgb = colorize_luma_record(model, y, saturation=saturation)[0]
        p.append(psnr(truth, rgb))
        c.append(colourfulness(rgb))
    return {"psnr": round(float(np.mean(p)), 3), "colourfulness": round(float(np.mean(c)), 2),
            "psnr_per_image": [round(float(v), 3) for v in p]}


def build_personal(ref_dirs, work, init, train_cfg, feature_cfg, jobs=1, init_dir=None):
    """Features of `ref_dirs` in ``work/features`` and a model fine-tuned from `init`; (model, seconds)."""
    from deepcolor.train import fine_tune  # lazy: imports torch

    t0 = time.perf_counter()
    extract_folder(ref_dirs, Path(work) / "features", feature_cfg, jobs=jobs, quiet=True)
    t1 = time.perf_counter()
    model = fine_tune(Path(work) / "features", init, train_cfg, ClusterConfig(), jobs=jobs, quiet=True,
                      init_dir=init_dir)
    t2 = time.perf_counter()
    return model, {"features_s": round(t1 - t0, 2), "fine_tune_s": round(t2 - t1, 2)}


def _fine_tune_record(model):
    """What cross-validation chose for a personal model: start network, epochs, the initial model kept whole."""
    record = model.info["init"]
    return {"init_network": record["network"], "epochs": record["epochs"],
            "kept_initial_model": record.get("kept_initial_model", False)}


def run_category(category, data, work, init, init_dir, cache_dir, split="test", n_refs=50, n_test=100,
                 n_targets=20, jobs=1, methods=METHODS, train_cfg=None, descriptor=None, rule=None):
    """The four rows of one category: {method: score, ...} with timings."""
    from deepcolor.train import FINETUNE_LR, train  # lazy: imports torch

    work = Path(work) / category
    refs, scored = category_split(data, category, split, n_refs, n_test)
    items = load_test_set(scored)
    fcfg = init.feature_config
    tcfg = train_cfg or TrainConfig(lr=FINETUNE_LR)
    out = {"n_refs": len(refs), "n_scored": len(items),
           "truth_colourfulness": round(float(np.mean([colourfulness(t) for _, _, t in items])), 2)}
    if "bundled" in methods:
        out["bundled"] = score(init, items)
    if "fine_tuned" in methods or "scratch" in methods:
        ref_dir = work / "refs"
        ref_dir.mkdir(parents=True, exist_ok=True)
        for p in refs:  # the references as links, so that features see exactly them
            link = ref_dir / p.name
            if not link.is_symlink():
                os.symlink(p.resolve(), link)
    if "fine_tuned" in methods:
        model, t = build_personal([work / "refs"], work / "fine_tuned", init, tcfg, fcfg, jobs, init_dir)
        out["fine_tuned"] = {**score(model, items), **t, **_fine_tune_record(model)}
        for factor in SATURATIONS:  # colour against PSNR: the personal model with stronger colour
            out[f"fine_tuned_saturation_{factor}"] = score(model, items, factor)
    if "scratch" in methods:
        t0 = time.perf_counter()
        fdir = work / "fine_tuned" / "features"
        extract_folder([work / "refs"], fdir, fcfg, jobs=jobs, quiet=True)  # reused from fine_tuned if there
        model = train(fdir, TrainConfig(), ClusterConfig(), jobs=jobs, quiet=True)
        out["scratch"] = {**score(model, items), "train_s": round(time.perf_counter() - t0, 2)}
    if "picked" in methods:
        grey = work / "targets"  # the scored photos' 8-bit luma, as an archive holds them
        write_grey_inputs(items[:n_targets], grey, overwrite=True)
        t0 = time.perf_counter()
        exclude = {p.resolve() for p in scored}  # val split: the scored photos are training photos
        pool = [p for p in pool_folders(data)]
        result = pick_references([grey], pool, n_refs, fcfg, descriptor or DEFAULT_DESCRIPTOR,
                                 rule or DEFAULT_RULE, cache_dir=cache_dir, jobs=jobs, quiet=True,
                                 exclude=exclude)
        write_pick(work / "picked", result)
        t1 = time.perf_counter()
        model, t = build_personal([work / "picked" / "references"], work / "picked", init, tcfg, fcfg, jobs,
                                  init_dir)
        intel = [Path(p).parent.name for p, _ in result["picked"] if "intel_scenes" in str(p)]
        out["picked"] = {**score(model, items), "pick_s": round(t1 - t0, 2), **t,
                         "build_s": round(time.perf_counter() - t0, 2),
                         "picked_same_category": sum(c == category for c in intel),
                         "picked_intel": len(intel), "picked_cached": result["counts"]["cached"],
                         **_fine_tune_record(model)}
    return out


def run(data, work, init_dir=None, cache_dir=None, split="test", jobs=1, categories=None, **kwargs):
    """The ``personal`` section: every category, the means, the targets of issue 17 checked."""
    from deepcolor.ensemble import Model  # lazy: imports torch

    if init_dir is None:
        init_dir = DEFAULT_MODEL
    init = Model.load(init_dir)
    work = Path(work)
    cache_dir = cache_dir or work / "descriptor-cache"
    report = {"init_model": str(init_dir),
              "init_manifest_sha256": hashlib.sha256((Path(init_dir) / "manifest.json").read_bytes()).hexdigest(),
              "split": split, "jobs": jobs, "load_average": list(os.getloadavg()), "categories": {}}
    t0 = time.perf_counter()
    # the pool's descriptors once (the cache), timed apart from the builds that then use it
    pool = [p for f in pool_folders(data) for p in find_images(f)]
    describe_images(pool, init.feature_config, cache_dir, jobs=jobs, quiet=True)
    report["pool_images"] = len(pool)
    report["pool_describe_s"] = round(time.perf_counter() - t0, 2)
    for c in categories or CATEGORIES:
        report["categories"][c] = run_category(c, data, work, init, init_dir, cache_dir, split, jobs=jobs, **kwargs)
        for row in report["categories"][c].values():
            if isinstance(row, dict):
                row.pop("psnr_per_image", None)
    report["mean"] = means(report["categories"])
    report["targets"] = check_targets(report["categories"])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def means(categories):
    """Mean PSNR and colourfulness of each method over the categories."""
    out = {}
    for m in METHODS + tuple(f"fine_tuned_saturation_{f}" for f in SATURATIONS):
        rows = [c[m] for c in categories.values() if m in c]
        if rows:
            out[m] = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in ("psnr", "colourfulness")}
    return out


def check_targets(categories):
    """The acceptance targets of issue 17, each as {"value", "met"} (None where a method is missing)."""
    cats = [c for c in categories.values() if all(m in c for m in METHODS)]
    if not cats:
        return None
    gain = [c["fine_tuned"]["psnr"] - c["bundled"]["psnr"] for c in cats]
    over = [c["fine_tuned"]["psnr"] - c["scratch"]["psnr"] for c in cats]
    picked = [c["picked"]["psnr"] - c["bundled"]["psnr"] for c in cats]
    colour = [c["fine_tuned"]["colourfulness"] - c["bundled"]["colourfulness"] for c in cats]
    build = [c["picked"]["build_s"] for c in cats]
    return {
        "fine_tuned_over_bundled_mean_db": {"value": round(float(np.mean(gain)), 3), "met": bool(np.mean(gain) >= 3.0)},
        "fine_tuned_over_bundled_min_db": {"value": round(float(min(gain)), 3), "met": bool(min(gain) >= 1.0)},
        "fine_tuned_over_scratch_mean_db": {"value": round(float(np.mean(over)), 3), "met": bool(np.mean(over) > 0)},
        "fine_tuned_over_scratch_categories": {"value": int(sum(o > 0 for o in over)),
                                               "met": bool(sum(o > 0 for o in over) >= 5)},
        "fine_tuned_colourfulness_not_below_bundled": {"value": int(sum(c >= 0 for c in colour)),
                                                       "met": bool(all(c >= 0 for c in colour))},
        "picked_over_bundled_mean_db": {"value": round(float(np.mean(picked)), 3),
                                        "met": bool(np.mean(picked) >= 2.5)},
        "build_max_s": {"value": round(float(max(build)), 1), "met": bool(max(build) <= 180)},
    }


def main(argv=None):
    """``python -m deepcolor.bench_personal``: the section alone, JSON on stdout (and --out)."""
    parser = argparse.ArgumentParser(prog="python -m deepcolor.bench_personal", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="data folder (default: $DEEPCOLOR_DATA or ../shared/data)")
    parser.add_argument("--work", type=Path, required=True, help="features, picks, models and the cache")
    parser.add_argument("--init", type=Path, help="the generic model (default: the bundled one)")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--categories", nargs="*", default=list(CATEGORIES), choices=CATEGORIES)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--lr", type=float, help="fine-tuning learning rate (default deepcolor.train.FINETUNE_LR)")
    parser.add_argument("--patience", type=int)
    parser.add_argument("--weighting", choices=("uniform", "psnr"))
    parser.add_argument("--descriptor")
    parser.add_argument("--rule")
    parser.add_argument("--cache", type=Path, help="descriptor cache (default: WORK/descriptor-cache)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import torch  # lazy: torch is heavy

    torch.set_num_threads(1)
    from deepcolor.train import FINETUNE_LR  # lazy: imports torch

    tcfg = TrainConfig(lr=args.lr or FINETUNE_LR).replace(patience=args.patience, image_weighting=args.weighting)
    report = run(args.data or default_data_dir(), args.work, args.init, args.cache, split=args.split, jobs=args.jobs,
                 categories=args.categories, methods=args.methods, train_cfg=tcfg, descriptor=args.descriptor,
                 rule=args.rule)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
