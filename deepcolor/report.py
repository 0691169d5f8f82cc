"""`deepcolor report`: the paper's ablation and the comparison systems on one split, to look at.

Trains every method on the same reference photos, colorizes the same test
photos (their 8-bit BT.601 luma) and writes, in one folder:

- ``report.html``: self-contained (images inline): the summary table, the
  PSNR distribution per method (matplotlib), and a gallery (grey input, each
  method, the truth) for a fixed selection of test photos plus deepcolor's
  best and worst;
- ``summary.csv`` / ``summary.json``: per method mean and median PSNR (RGB,
  uint8, native size, as the paper), mean SSIM, mean colourfulness and its
  mean gap to the truth's, the share of photos on which it beats deepcolor,
  training time, colorization time per image;
- ``per_image.csv``: every method's scores on every test photo.

Methods: the grey input itself (the reference row any colorizer must beat),
the ablation of Cheng et al. (patch only; + DAISY; + semantic;
without the joint bilateral refinement; one network against the adaptive
ensemble; the ensemble with the nearest centre only, without the
semantic-histogram selector) and the baselines of `deepcolor.baselines`.
"""

import base64
import csv
import html
import io
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from deepcolor.baselines import NAMES, baseline_class
from deepcolor.bench_pipeline import train_pipeline
from deepcolor.colorize import colorize_luma
from deepcolor.files import atomic_write_text
from deepcolor.images.formats import find_images
from deepcolor.images.read import read_rgb_u8
from deepcolor.images.write import encode_image, write_image
from deepcolor.metrics import colourfulness, psnr, ssim
from deepcolor.progress import progress_bar
from deepcolor.settings import CONFIG_SECTIONS
from deepcolor.testsets import load_test_set as load_paths

log = logging.getLogger(__name__)

# Each baseline's most epochs in the report unless --baseline-epochs is given, and the patience
# (epochs without a lower held-out loss) that ends its training earlier; see docs/DESIGN.md.
REPORT_EPOCHS = {"autoencoder": 40, "unet-regression": 25, "unet-classification": 12, "palette": 14, "iizuka": 40}
REPORT_PATIENCE = 5

# The deepcolor method that the gallery's best and worst photos are chosen by.
MAIN_METHOD = "deepcolor"
SUMMARY_COLUMNS = ("method", "kind", "description", "n_images", "psnr_mean", "psnr_median", "ssim_mean",
                   "cf_mean", "cf_gap_mean", "better_than_main", "train_s", "seconds_per_image")


@dataclass
class Method:
    """One row of the report: how it colorizes, what it cost to train."""

    name: str
    kind: str  # "reference", "deepcolor", "ablation" or "baseline"
    description: str
    colorize: object  # callable: y (H, W) float32 in [0, 1] -> RGB uint8 (H, W, 3)
    train_s: float
    rows: list = field(default_factory=list)


def load_test_set(test_dir, limit=None):
    """(stem, y (H, W) float32 from the 8-bit BT.601 luma, truth RGB uint8) per test photo, sorted."""
    items = load_paths(find_images(test_dir)[:limit])
    if not items:
        raise ValueError(f"{test_dir}: no test images found")
    return items


def grey_rgb(y):
    """The grey image `y` (H, W) in [0, 1] as RGB uint8 (H, W, 3)."""
    return np.repeat(np.rint(y * 255).astype(np.uint8)[..., None], 3, axis=2)


def grey_method():
    """The reference row: the grey input itself (no chroma), the score any colorizer must beat."""
    return Method("grey input", "reference", "the grey input itself, no colour added", grey_rgb, 0.0)


def deepcolor_methods(ref_dirs, work, jobs=1, seed=0, configs=None, quiet=False):
    """The paper's ablation, each variant trained on `ref_dirs` with the project's defaults.

    Returns a list of `Method`. Variants that share a trained model (refinement
    off, selector off) are views of it and share its training time.
    """
    cfgs = configs or {name: cls() for name, cls in CONFIG_SECTIONS.items()}
    fcfg = cfgs["features"].replace(seed=seed)
    tcfg, rcfg = cfgs["train"].replace(seed=seed), cfgs["refine"]
    ccfg = cfgs["clusters"].replace(seed=seed)
    one = ccfg.replace(n_clusters=1)
    work = Path(work)

    def run(fc, cc, sub):
        log.info("report: training deepcolor %s", sub)
        single, ensemble, _, timings = train_pipeline(ref_dirs, work / sub, fc, tcfg, rcfg, cc, jobs)
        return single, ensemble, timings

    def view(model, refine=True, n_candidates=None):
        rc = model.refine_config if refine else replace(model.refine_config, enabled=False)
        cc = model.cluster_config if n_candidates is None else model.cluster_config.replace(n_candidates=n_candidates)
        m = type(model)(model.networks, model.feature_config, model.train_config, rc, model.info,
                        clusters=model.clusters, cluster_config=cc if model.clusters else None)
        return lambda y: colorize_luma(m, y)

    base = tuple(n for n in fcfg.features if n != "semantic") or ("patch", "daisy")
    patch, _, t_patch = run(fcfg.replace(features=("patch",)), one, "patch")
    single, ensemble, t_main = run(fcfg.replace(features=base), ccfg, "main")
    semantic, _, t_sem = run(fcfg.replace(features=base + ("semantic",)), one, "semantic")
    one_s = t_main["features_s"] + t_main["single_network_train_s"]
    ens_s = t_main["features_s"] + t_main["train_s"]
    methods = [
        Method("patch", "ablation", "one network, 7x7 patch only", view(patch),
               t_patch["features_s"] + t_patch["train_s"]),
        Method("patch+DAISY", "ablation", "one network, patch and DAISY (the paper's low- and mid-level "
               "features)", view(single), one_s),
        Method("patch+DAISY+semantic", "ablation", "one network, with the semantic feature (bundled parser)",
               view(semantic), t_sem["features_s"] + t_sem["train_s"]),
        Method("patch+DAISY, no refinement", "ablation", "one network, without the joint bilateral refinement",
               view(single, refine=False), one_s),
    ]
    if ensemble is not None:
        methods += [
            Method("ensemble, nearest centre", "ablation", "adaptive ensemble, cluster chosen by the global "
                   "descriptor only (no semantic histogram)", view(ensemble, n_candidates=1), ens_s),
            Method(MAIN_METHOD, "deepcolor", "adaptive ensemble with the semantic-histogram selector and "
                   "joint bilateral refinement (the default model)", view(ensemble), ens_s),
        ]
    else:
        methods[1] = replace(methods[1], name=MAIN_METHOD, kind="deepcolor")
    return methods


def baseline_methods(ref_paths, work, names, seed=0, epochs=None, max_images=None, labels=None, quiet=False):
    """Each named baseline of `deepcolor.baselines` trained on `ref_paths`, saved under work/baselines.

    `labels` (``path -> int or None``) feeds the baselines with a classification
    loss (Iizuka et al.'s scene classes); the others ignore it.
    """
    if not names:
        return []
    methods = []
    for name in names:
        if name not in NAMES:
            raise ValueError(f"unknown baseline {name!r}; choose from {sorted(NAMES)}")
        cls = baseline_class(name)
        log.info("report: training baseline %s", name)
        baseline = cls(seed=seed, epochs=epochs or REPORT_EPOCHS.get(name, 30), patience=REPORT_PATIENCE)
        bar = progress_bar(total=baseline.epochs, desc=f"report: train {name}", unit="epoch", quiet=quiet)
        start = time.perf_counter()
        baseline.fit(ref_paths, labels=labels, progress=lambda _: bar.update(1), max_images=max_images)
        train_s = time.perf_counter() - start
        bar.close()
        baseline.save(Path(work) / "baselines" / name)
        description = (cls.__doc__ or name).strip().splitlines()[0].rstrip(".")
        methods.append(Method(name, "baseline", description, baseline.colorize, train_s))
    return methods


def folder_labels(paths):
    """Scene labels from each photo's folder name (the Intel scenes layout: ``CATEGORY/photo.jpg``)."""
    names = sorted({Path(p).parent.name for p in paths})
    index = {n: i for i, n in enumerate(names)}
    return lambda path: index.get(Path(path).parent.name)


def score(method, items, pred_dir=None, quiet=False, cf_truth=None):
    """Colorize every test item with `method`; fill ``method.rows`` (scores and seconds per image).

    `cf_truth` (stem -> colourfulness of the truth) saves computing it again for every method.
    """
    bar = progress_bar(total=len(items), desc=f"report: {method.name}", unit="img", quiet=quiet)
    method.rows = []
    for stem, y, truth in items:
        t = time.perf_counter()
        rgb = method.colorize(y)
        seconds = time.perf_counter() - t
        if pred_dir is not None:
            write_image(Path(pred_dir) / f"{stem}.png", rgb)
        cf = colourfulness(rgb)
        cf_t = colourfulness(truth) if cf_truth is None else cf_truth[stem]
        method.rows.append({"stem": stem, "psnr": psnr(truth, rgb), "ssim": ssim(truth, rgb), "cf": cf,
                            "cf_truth": cf_t, "cf_gap": abs(cf - cf_t), "seconds": seconds})
        bar.update(1)
    bar.close()
    return method


def summarise(method, main=None):
    """The summary row of a scored method; `main` (a scored Method) adds the share of photos it beats."""
    col = {k: np.array([r[k] for r in method.rows], np.float64) for k in ("psnr", "ssim", "cf", "cf_gap", "seconds")}
    better = None
    if main is not None and main is not method:
        theirs = {r["stem"]: r["psnr"] for r in main.rows}
        better = float(np.mean([r["psnr"] > theirs[r["stem"]] for r in method.rows]))
    return {"method": method.name, "kind": method.kind, "description": method.description,
            "n_images": len(method.rows), "psnr_mean": float(col["psnr"].mean()),
            "psnr_median": float(np.median(col["psnr"])), "ssim_mean": float(col["ssim"].mean()),
            "cf_mean": float(col["cf"].mean()), "cf_gap_mean": float(col["cf_gap"].mean()),
            "better_than_main": better, "train_s": round(float(method.train_s), 2),
            "seconds_per_image": float(col["seconds"].mean())}


def gallery_stems(items, main_rows, n_fixed=4, n_extremes=2):
    """A fixed, evenly spaced selection of test photos, then `main_rows`' best and worst by PSNR."""
    stems = [s for s, _, _ in items]
    fixed = [stems[i] for i in np.linspace(0, len(stems) - 1, min(n_fixed, len(stems))).round().astype(int)]
    ranked = sorted(main_rows, key=lambda r: r["psnr"])
    picks = [("fixed", s) for s in dict.fromkeys(fixed)]
    picks += [("best", r["stem"]) for r in ranked[::-1][:n_extremes]]
    picks += [("worst", r["stem"]) for r in ranked[:n_extremes]]
    return picks


def _png_data_uri(rgb, width=200):
    """A thumbnail `width` px wide of an RGB uint8 image, as a PNG data URI."""
    scale = width / rgb.shape[1]
    small = cv2.resize(rgb, (width, max(1, round(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return "data:image/png;base64," + base64.b64encode(encode_image(small, ".png")).decode("ascii")


def psnr_plot(methods):
    """PNG data URI of a box plot of each method's PSNR over the test photos (matplotlib)."""
    import matplotlib  # lazy: matplotlib is slow to import, and only the report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(methods) + 1.2), dpi=100)
    ax.boxplot([[r["psnr"] for r in m.rows] for m in methods], orientation="horizontal", showmeans=True)
    ax.set_yticks(range(1, len(methods) + 1), [m.name for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel("PSNR (dB, RGB, uint8, native size)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(summary, methods, items, picks, pred_dirs, settings):
    """The self-contained HTML page."""
    e = html.escape
    head = ["method", "kind", "PSNR mean", "PSNR median", "SSIM", "colourfulness", "|CF gap|",
            f"photos above {MAIN_METHOD}", "training s", "s / image"]
    keys = ["method", "kind", "psnr_mean", "psnr_median", "ssim_mean", "cf_mean", "cf_gap_mean", "better_than_main",
            "train_s", "seconds_per_image"]
    fmt = {"psnr_mean": "{:.2f}", "psnr_median": "{:.2f}", "ssim_mean": "{:.3f}", "cf_mean": "{:.1f}",
           "cf_gap_mean": "{:.1f}", "better_than_main": "{:.0%}", "train_s": "{:.0f}", "seconds_per_image": "{:.3f}"}

    def cell(row, k):
        return "-" if row[k] is None else fmt.get(k, "{}").format(row[k])

    rows = "".join("<tr>" + "".join(f"<td title='{e(row['description'])}'>" + e(cell(row, k)) + "</td>"
                                    for k in keys) + "</tr>" for row in summary)
    truth_by_stem = {s: (y, t) for s, y, t in items}
    cf_truth = np.mean([r["cf_truth"] for r in methods[0].rows])
    gallery = []
    for why, stem in picks:
        y, truth = truth_by_stem[stem]
        cells = [("grey input", _png_data_uri(grey_rgb(y)))]
        for m in (m for m in methods if m.kind != "reference"):  # the grey input is the first cell
            score_ = next(r["psnr"] for r in m.rows if r["stem"] == stem)
            cells.append((f"{m.name} ({score_:.1f} dB)", _png_data_uri(read_rgb_u8(pred_dirs[m.name] / f"{stem}.png"))))
        cells.append(("truth", _png_data_uri(truth)))
        figs = "".join(f"<figure><img src='{uri}'><figcaption>{e(cap)}</figcaption></figure>" for cap, uri in cells)
        gallery.append(f"<h3>{e(stem)} <small>({e(why)})</small></h3><div class='row'>{figs}</div>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepcolor report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}
.row{{display:flex;flex-wrap:wrap;gap:6px}}figure{{margin:0;font-size:12px;width:200px}}</style></head><body>
<h1>deepcolor report</h1>
<p>References: {e(", ".join(map(str, settings["refs"])))}; test photos: {e(str(settings["test"]))}
({len(items)}; grey input = 8-bit BT.601 luma of each). PSNR and SSIM on RGB, uint8, native size;
colourfulness of Hasler and Suesstrunk (truth: {cf_truth:.1f}); "photos above {MAIN_METHOD}": the share of
test photos on which a method's PSNR is higher than {MAIN_METHOD}'s. Times on this machine
({e(settings["machine"])}); training includes feature extraction. Hover over a method for its description.</p>
<h2>Summary</h2><table><tr>{"".join(f"<th>{e(h)}</th>" for h in head)}</tr>{rows}</table>
<h2>PSNR per test photo</h2><p>Box: quartiles; orange line: median; green triangle: mean;
whiskers: 1.5 times the interquartile range; circles: photos beyond them.</p>
<img src="{psnr_plot(methods)}" alt="PSNR distribution per method">
<h2>Gallery</h2><p>Each photo is labelled by why it is shown: <b>fixed</b>, one of an evenly spaced
selection of the test photos in name order (the same photos in every report on this test set, so reports
can be compared); <b>best</b> and <b>worst</b>, the photos on which {MAIN_METHOD} scored its highest and
lowest PSNR. Under each image, the method and its PSNR on that photo.</p>{"".join(gallery)}
</body></html>
"""


def _write_csv(path, columns, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _check_count(name, value):
    """None, or a positive int (a setting checked before any training)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def run_report(ref_dirs, test_dir, out_dir, baselines=None, limit=None, jobs=1, seed=0, baseline_epochs=None,
               baseline_images=None, scene_labels=False, configs=None, quiet=False):
    """Train, colorize, score and write the report; returns the summary rows.

    Parameters
    ----------
    ref_dirs : list of path
        Colour reference photos (folders searched recursively).
    test_dir : path
        Colour test photos; their grey versions are colorized.
    out_dir : path
        Receives report.html, summary.csv, summary.json, per_image.csv, and
        ``work/`` (features, models, predictions).
    baselines : list of str, optional
        Names in `deepcolor.baselines.BASELINES` (default: all; [] for none).
    limit : int, optional
        Use only the first `limit` test photos (by name).
    baseline_epochs : int, optional
        Epochs of every baseline (default: each one's own).
    baseline_images : int, optional
        Train the baselines on a seeded subset of this many references.
    scene_labels : bool
        The references' folder names are scene categories (Intel scenes):
        Iizuka et al.'s joint classification loss uses them.
    """
    _check_count("limit", limit)
    out_dir = Path(out_dir)
    work = out_dir / "work"
    items = load_test_set(test_dir, limit)
    ref_paths = [p for d in ref_dirs for p in find_images(d)]
    if not ref_paths:
        raise ValueError(f"no reference images found in {', '.join(map(str, ref_dirs))}")
    if baselines is None:
        baselines = sorted(NAMES)
    if baselines:  # check the baselines' settings before an hour of training, not after the ablation
        unknown = [n for n in baselines if n not in NAMES]
        if unknown:
            raise ValueError(f"unknown baseline {unknown[0]!r}; choose from {sorted(NAMES)}")
        _check_count("baseline epochs", baseline_epochs)
        _check_count("baseline images", baseline_images)
    start = time.perf_counter()
    methods = [grey_method()] + deepcolor_methods(ref_dirs, work, jobs, seed, configs, quiet)
    labels = folder_labels(ref_paths) if scene_labels else None
    methods += baseline_methods(ref_paths, work, baselines, seed, baseline_epochs, baseline_images, labels, quiet)
    pred_dirs = {}
    cf_truth = {stem: colourfulness(truth) for stem, _, truth in items}
    for m in methods:
        pred_dirs[m.name] = work / "predictions" / m.name.replace("/", "_").replace(" ", "_")
        score(m, items, pred_dirs[m.name], quiet, cf_truth)
    main = next(m for m in methods if m.name == MAIN_METHOD)
    summary = [summarise(m, main) for m in methods]
    settings = {"refs": [str(r) for r in ref_dirs], "test": str(test_dir), "n_test": len(items), "seed": seed,
                "machine": f"{os.cpu_count()} cores, {platform.platform()}"}
    page = render_html(summary, methods, items, gallery_stems(items, main.rows), pred_dirs, settings)
    atomic_write_text(out_dir / "report.html", page)
    _write_csv(out_dir / "summary.csv", SUMMARY_COLUMNS, summary)
    per_image = [{"method": m.name, **r} for m in methods for r in m.rows]
    _write_csv(out_dir / "per_image.csv", ("method", "stem", "psnr", "ssim", "cf", "cf_truth", "cf_gap", "seconds"),
               per_image)
    atomic_write_text(out_dir / "summary.json", json.dumps(
        {"settings": settings, "total_s": round(time.perf_counter() - start, 1), "methods": summary}, indent=1) + "\n")
    return summary
