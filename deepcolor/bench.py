"""`make bench`: what the acceptance criteria ask for, measured in one run on this machine.

Prints one JSON document (and writes it to --out). Sections:

- ``daisy``: dense DAISY (32 values, radius 8) at 256x171: our scikit-image backend (a
  vectorised equivalent of ``skimage.feature.daisy``), OpenCV's, and scikit-image's own
  function as the baseline.
- ``pipeline``: wall time of feature extraction, of training the single
  network and of the adaptive ensemble (warm-started from it, so its time
  includes the single network's) on the references (BSDS500 train+val by
  default).
- ``quality``: PSNR (RGB, uint8, native size) on the test images (BSDS500
  test) for: grey (zero chroma), the references' mean chroma, the default
  model (the ensemble) without refinement, the default model. Grey inputs
  are the 8-bit BT.601 luma of each truth image. ``quality_test_sets``: the
  model and its single network on every test set of the data folder
  (`deepcolor.bench_quality`: BSDS500, ImageNet sample, Stanford Background,
  CamVid, MSRC-v2, Intel scenes by category), with the grey and mean-colour
  rows, PSNR mean and median, SSIM and colourfulness against the truth's.
- ``ensemble_bsds500``, ``ensemble_intel``: the ablation of issue 4 on the
  BSDS500 test set and on the Intel scenes test set (references: a seeded
  subset of Intel train): one network; the ensemble with clusters chosen by
  global descriptor only; the ensemble with the semantic-histogram selector;
  the oracle (best network per image).
- ``semantic``: the single network's quality with and without the
  semantic feature (same references and settings otherwise).
- ``parsing``: the scene parsers on the MSRC-v2 evaluation split, Stanford
  Background test and CamVid test (`deepcolor.bench_parsing`): pixel accuracy
  and mean IoU of the ADE20K teacher on colour and on grey, the old student
  and the grey-image parser on grey; the parser's time per test image.
- ``speed``: colorize time per test image, model loaded (start-up excluded),
  torch on one thread as `deepcolor colorize` runs it: in memory (luminance in,
  RGB out) over all test images, and file to file (read, colorize, write PNG)
  over the first 50; a 12- and a 50-megapixel photo file to file in a fresh
  process, with that process's peak resident memory (Python and torch
  included); the whole test folder through ``deepcolor colorize --jobs N`` in a
  fresh process (start-up included), and the same on a local dask cluster of
  N workers (``--backend dask``), with the ratio of their wall times.
- ``baselines`` (only when named in ``--sections``; about 30 minutes): the
  training choices of `deepcolor.baselines`, each trained twice on the
  references and scored on the test images (mean and median PSNR): the
  autoencoder, Iizuka et al.'s network and the regression U-Net without and
  with left-right mirroring (`flip`); and Iizuka et al.'s network on a seeded
  subset of Intel scenes train without and with its scene-classification
  loss (the folder names as labels), scored on the first photos of each
  Intel test category.
- ``personal`` (only when named in ``--sections``; about 6 minutes): issue 17's personal
  models on the Intel scenes against ``--model`` (default: the bundled model), per category:
  the generic model, a model fine-tuned from it on 50 photos of the category, one fine-tuned
  on 50 references `deepcolor pick` chose from a pool, one trained from scratch
  (`deepcolor.bench_personal`).
- With ``--sections`` other than ``quality``, the speed section uses
  ``--model`` (default: the bundled model).

Run ``python -m deepcolor.bench --help`` for the options.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepcolor.color import combine_luma_chroma, rgb_to_gray_u8, to_uint8
from deepcolor.config import ClusterConfig, FeatureConfig, RefineConfig, TrainConfig
from deepcolor.evaluate import psnr
from deepcolor.io import find_images, read_rgb_u8


def default_data_dir():
    env = os.environ.get("DEEPCOLOR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_daisy(gray, repeat=15):
    """Median seconds of each DAISY backend on one image, and their ratio."""
    from deepcolor.features import daisy_features

    from skimage.feature import daisy

    out = {"shape": list(gray.shape), "repeat": repeat}
    for backend in ("skimage", "opencv"):
        daisy_features(gray, backend=backend)  # warm-up
        out[f"{backend}_s"] = round(_median_time(lambda: daisy_features(gray, backend=backend), repeat), 5)
    out["opencv_over_skimage"] = round(out["opencv_s"] / out["skimage_s"], 3)
    # The baseline: scikit-image's own function on the same padded image (our "skimage" backend equals it).
    padded = np.pad(gray.astype(np.float32), 8, mode="reflect")
    out["skimage_daisy_function_s"] = round(_median_time(
        lambda: daisy(padded, step=1, radius=8, rings=1, histograms=3, orientations=8), repeat), 5)
    out["skimage_backend_speedup"] = round(out["skimage_daisy_function_s"] / out["skimage_s"], 2)
    return out


def load_test_set(paths):
    """(name, y float32 (H, W) from 8-bit luma, truth uint8 RGB) per test image."""
    items = []
    for p in paths:
        truth = read_rgb_u8(p)
        y = rgb_to_gray_u8(truth).astype(np.float32) / 255.0
        items.append((p.stem, y, truth))
    return items


def score_constant_chroma(items, uv):
    """PSNR of each test image coloured with one constant chrominance (0, 0 = grey)."""
    scores = []
    for _, y, truth in items:
        chroma = np.broadcast_to(np.asarray(uv, np.float32), y.shape + (2,))
        scores.append(psnr(truth, to_uint8(combine_luma_chroma(y, chroma))))
    return scores


def score_model(model, items):
    """PSNR per test image and seconds per image of `colorize_luma` (in memory)."""
    from deepcolor.colorize import colorize_luma

    scores, times = [], []
    for _, y, truth in items:
        t = time.perf_counter()
        rgb = colorize_luma(model, y)
        times.append(time.perf_counter() - t)
        scores.append(psnr(truth, rgb))
    return scores, times


def ensemble_table(model, items):
    """What every network of an ensemble does on every test image, for the selectors' ablation.

    Per image: the global descriptors and semantic histogram, and the PSNR of
    the colorization by each network (features computed once, each network's
    U, V refined and composed exactly as `colorize_luma` does).

    Returns
    -------
    dict of ``psnr`` (n_images, n_networks), ``gist``, ``semantic``, ``histogram`` (n_images, .)
    """
    from deepcolor.clustering import image_descriptors
    from deepcolor.colorize import compose, refine_chroma, working_luma
    from deepcolor.features import compute_features, load_parser

    fcfg = model.feature_config
    parser = load_parser(fcfg.semantic_parser, fcfg.histogram_groups)
    rows = {"psnr": [], "gist": [], "semantic": [], "histogram": []}
    for _, y, truth in items:
        y_work = working_luma(model, y)
        for key, value in image_descriptors(y_work, parser).items():
            rows[key].append(value)
        feats = compute_features(y_work, fcfg.features, fcfg.params())
        feats = feats.reshape(-1, feats.shape[-1])
        scores = []
        for i in range(len(model.networks)):
            uv = model.predict_uv(feats, i).reshape(y_work.shape + (2,))
            scores.append(psnr(truth, compose(y, refine_chroma(model, uv, y_work))))
        rows["psnr"].append(scores)
    return {k: np.asarray(v) for k, v in rows.items()}


def selector_scores(model, table, n_candidates, search=None, distance=None):
    """PSNR per test image of the cluster `select_cluster` picks (from an `ensemble_table`), and the picks."""
    from deepcolor.clustering import combine, select_cluster

    ccfg = model.cluster_config
    desc = combine(table["gist"], table["semantic"], ccfg.descriptor)
    picks = np.array([select_cluster(d, h, model.centers, model.histograms, model.layers, n_candidates,
                                     distance or ccfg.histogram_distance, search or ccfg.search_layers)[0]
                      for d, h in zip(desc, table["histogram"])])
    return table["psnr"][np.arange(len(picks)), picks], picks


def time_files(model, items, work):
    """Seconds per file of `deepcolor colorize`'s in-process path (read, colorize, write PNG), model loaded.

    The inputs are the test set's grey images written as 8-bit grey PNGs
    beforehand (not timed).
    """
    from deepcolor.colorize import colorize_batch

    times = []
    for p in write_grey_inputs(items, Path(work) / "grey"):
        t = time.perf_counter()
        (out,) = colorize_batch(model, None, [(p, Path(work) / "files" / f"{p.stem}.png")], overwrite=True, quiet=True)
        times.append(time.perf_counter() - t)
        if out.status != "done":
            raise RuntimeError(out.message)
    return times


def summary(values):
    return {"mean": round(float(np.mean(values)), 4), "median": round(float(np.median(values)), 4),
            "max": round(float(np.max(values)), 4), "n": len(values)}


def references_mean_chroma(features_dir):
    from deepcolor.extract import load_shards

    uv = np.concatenate([s[2] for s in load_shards(features_dir)])
    return uv.mean(axis=0)


def train_pipeline(ref_dirs, work, fcfg, tcfg, rcfg, ccfg, jobs):
    """Features, the single network, and the ensemble warm-started from it, each timed.

    Returns (single, ensemble or None, features_dir, timings). The ensemble's
    training time includes the single network's, its first step.
    """
    from deepcolor.extract import extract_folder
    from deepcolor.train import train_ensemble, train_model

    fdir = Path(work) / "features"
    t0 = time.perf_counter()
    manifest = extract_folder(ref_dirs, fdir, fcfg, jobs=jobs, quiet=True)
    t1 = time.perf_counter()
    single = train_model(fdir, tcfg, rcfg, quiet=True)
    t2 = time.perf_counter()
    ensemble = None
    if ccfg.n_clusters > 1:
        ensemble = train_ensemble(fdir, tcfg, ccfg, rcfg, jobs=jobs, quiet=True, init=single.networks[0])
    t3 = time.perf_counter()
    model = ensemble or single
    model.save(Path(work) / "model")
    timings = {
        "features_s": round(t1 - t0, 2), "single_network_train_s": round(t2 - t1, 2),
        "train_s": round(t3 - t1, 2), "total_s": round(t3 - t0, 2),
        "references": manifest["counts"], "epochs_run": single.info["history"]["epochs_run"],
        "best_val_mse": round(single.info["history"]["best_val_mse"], 6),
    }
    if ensemble is not None:
        info = ensemble.info
        timings["ensemble"] = {"networks": len(ensemble.networks), "layers": info["n_layers"],
                               "layer_sizes": info["layer_sizes"], "removed_per_layer": info["removed_per_layer"],
                               "reference_psnr_by_layer": info["layer_mean_psnr"],
                               "cluster_sizes": [c["n_members"] for c in ensemble.clusters],
                               "cluster_layers": [c["layer"] for c in ensemble.clusters],
                               "jobs": info["jobs"]}
    return single, ensemble, fdir, timings


def bench_ensemble(one, ensemble, items):
    """The ablation of issue 4 on one test set: one network, clusters by global descriptor only, the selector.

    `one` holds the single network's PSNR per test image (`score_model`).
    Also the oracle (the best network per image, an upper bound on any
    selector) and how often the selector departs from the global choice.
    """
    table = ensemble_table(ensemble, items)
    global_only, g_picks = selector_scores(ensemble, table, n_candidates=1)
    selected, s_picks = selector_scores(ensemble, table, ensemble.cluster_config.n_candidates)
    return {
        "n_test_images": len(items),
        "one_network": summary(one),
        "clusters_global_descriptor_only": summary(global_only),
        "clusters_semantic_histogram_selector": summary(selected),
        "oracle_best_network_per_image": summary(table["psnr"].max(axis=1)),
        "selector_minus_one_network_db": round(float(np.mean(selected) - np.mean(one)), 3),
        "global_only_minus_one_network_db": round(float(np.mean(global_only) - np.mean(one)), 3),
        "selector_changed_choice_share": round(float(np.mean(g_picks != s_picks)), 3),
        "picks_per_cluster": np.bincount(s_picks, minlength=len(ensemble.networks)).tolist(),
    }


def bench_intel(data, work, fcfg, tcfg, rcfg, ccfg, jobs, n_refs):
    """Issue 4's ablation on the Intel scenes: references a seeded subset of train, all of test."""
    from deepcolor.features.labelsets import select_photos

    train_dir, test_dir = data / "intel_scenes" / "train", data / "intel_scenes" / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        return f"skipped: {train_dir} or {test_dir} not found"
    refs = select_photos([train_dir], max_per_folder=n_refs, seed=0)
    single, ensemble, _, timings = train_pipeline(refs, work, fcfg, tcfg, rcfg, ccfg, jobs)
    items = load_test_set(find_images(test_dir))
    out = {"references": f"{len(refs)} of {train_dir} (deepcolor.features.labelsets.select_photos, seed 0)",
           "test": str(test_dir), "pipeline": timings}
    if ensemble is not None:
        out.update(bench_ensemble(score_model(single, items)[0], ensemble, items))
    return out


_LARGE_CHILD = r"""
import json, sys, time
import numpy as np
from deepcolor.colorize import colorize_batch, colorize_luma
from deepcolor.ensemble import Model
model = Model.load(sys.argv[1])
colorize_luma(model, np.full((64, 64), 0.5, np.float32))  # start-up: first-call initialisation
t = time.perf_counter()
(out,) = colorize_batch(model, sys.argv[1], [(sys.argv[2], sys.argv[3])], overwrite=True, quiet=True)
sec = time.perf_counter() - t
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"status": out.status, "message": out.message, "seconds": round(sec, 3),
                  "peak_rss_mb": round(int(hwm) / 1024, 1)}))
"""


def run_parsing(data, fcfg, time_photos):
    """The ``parsing`` section (`deepcolor.bench_parsing`): the configured grey parser against the teacher and the old student."""
    from deepcolor.bench_parsing import bench_parsing
    from deepcolor.features.parsers import default_parser_dir
    from deepcolor.features.teacher import ADE20K_MODEL_NAME

    teacher = data / "models" / ADE20K_MODEL_NAME
    if not teacher.is_file():
        return f"skipped: {teacher} not found"
    parser = default_parser_dir() if fcfg.semantic_parser == "default" else Path(fcfg.semantic_parser)
    return bench_parsing(data, teacher, parser, old_parser_dir=default_parser_dir().parent / "parser-v1",
                         time_photos=time_photos, threads=2)


def bench_large(model_dir, source, work, megapixels=12.0):
    """Colorize a `megapixels` JPEG (an upscaled test photo) in a fresh process.

    Time covers reading, colorizing and writing the PNG, not start-up (imports,
    loading the model, and one 64x64 colorization that initialises torch and
    OpenCV); the peak resident memory is the whole process's (Python, torch
    and all).
    """
    import cv2

    rgb = read_rgb_u8(source)
    scale = np.sqrt(megapixels * 1e6 / (rgb.shape[0] * rgb.shape[1]))
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
    gray = rgb_to_gray_u8(big)
    del rgb, big
    src = Path(work) / f"large-{megapixels:g}mp.jpg"
    cv2.imwrite(str(src), gray, [cv2.IMWRITE_JPEG_QUALITY, 92])
    del gray
    dst = Path(work) / f"large-{megapixels:g}mp-out.png"
    proc = subprocess.run([sys.executable, "-c", _LARGE_CHILD, str(model_dir), str(src), str(dst)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(width=size[0], height=size[1], megapixels=round(size[0] * size[1] / 1e6, 2))
    src.unlink()
    dst.unlink(missing_ok=True)
    return result


def write_grey_inputs(items, folder):
    """The test set's grey images as 8-bit grey PNGs in `folder` (not timed); their paths."""
    from deepcolor.io import write_image

    paths = []
    for name, y, _ in items:
        paths.append(Path(folder) / f"{name}.png")
        if not paths[-1].exists():
            write_image(paths[-1], np.rint(y * 255).astype(np.uint8))
    return paths


def bench_folder(model_dir, grey_dir, out_dir, jobs, backend="loky"):
    """Wall time of ``deepcolor colorize GREY_DIR OUT_DIR --jobs N [--backend dask]`` in a fresh process.

    Everything a user waits for is counted: start-up, loading the model in
    each worker (and starting a local dask cluster of `jobs` workers for
    "dask"), reading, colorizing, writing. The record's per-file seconds are
    summed too.
    """
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "deepcolor", "colorize", str(grey_dir), str(out_dir), "--model", str(model_dir),
           "--jobs", str(jobs), "--backend", backend, "-q"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    from deepcolor.cli import COLORIZE_LOG, read_records

    records = read_records(Path(out_dir) / COLORIZE_LOG)
    done = [r for r in records if r["status"] == "done"]
    return {"backend": backend, "jobs": jobs, "images": len(done), "wall_s": round(wall, 2),
            "images_per_s": round(len(done) / wall, 2),
            "sum_file_s": round(sum(r["seconds"] for r in done), 2)}


def bench_speed(model, model_dir, items, test_paths, work, jobs):
    """The `speed` section: per-image times, large photos, and a whole folder here and on dask.

    Torch runs on one thread, as `deepcolor colorize` runs it (`colorize._in_process`).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, in_memory_times = score_model(model, items)
    finally:
        torch.set_num_threads(before)
    grey_dir = Path(work) / "grey"
    write_grey_inputs(items, grey_dir)
    local = bench_folder(model_dir, grey_dir, Path(work) / "folder-loky", jobs)
    from deepcolor.evaluate import evaluate_dirs

    scores = evaluate_dirs(Path(test_paths[0]).parent, Path(work) / "folder-loky").summary
    local["psnr_mean"], local["psnr_median"] = round(scores["psnr_mean"], 3), round(scores["psnr_median"], 3)
    try:
        dask = bench_folder(model_dir, grey_dir, Path(work) / "folder-dask", jobs, backend="dask")
        dask["wall_over_local"] = round(dask["wall_s"] / local["wall_s"], 3)
    except (RuntimeError, ImportError) as exc:
        dask = f"failed: {exc}"
    return {
        "colorize_in_memory_s_per_image": summary(in_memory_times),
        "colorize_file_s_per_image": summary(time_files(model, items[:50], work)),
        "large": bench_large(model_dir, test_paths[0], work, 12.0),
        "large_50mp": bench_large(model_dir, test_paths[0], work, 50.0),
        "folder": local,
        "folder_dask_local_cluster": dask,
    }


def bench_quality(report, args, data, refs, items, work, fcfg, tcfg, rcfg, ccfg):
    """The `quality` and `intel` sections: train on the references, score the test set, the ablations.

    Returns the default model (saved in work/model) and its in-memory seconds per test image.
    """
    from dataclasses import replace

    single, ensemble, fdir, timings = train_pipeline(refs, work, fcfg, tcfg, rcfg, ccfg, args.jobs)
    model = ensemble or single  # the default model: what `deepcolor train` builds with these settings
    report["pipeline"] = timings

    mean_uv = references_mean_chroma(fdir)
    grey = score_constant_chroma(items, (0.0, 0.0))
    mean = score_constant_chroma(items, mean_uv)
    raw_model = type(model)(model.networks, model.feature_config, model.train_config,
                            replace(model.refine_config, enabled=False), clusters=model.clusters,
                            cluster_config=model.cluster_config)
    raw, _ = score_model(raw_model, items)
    full, times = score_model(model, items)
    one = full if ensemble is None else score_model(single, items)[0]
    report["quality"] = {
        "n_test_images": len(items), "conventions": "PSNR in dB on RGB uint8 at native size",
        "grey": summary(grey), "mean_chroma": summary(mean),
        "mean_chroma_uv": [round(float(v), 5) for v in mean_uv],
        "model_without_refinement": summary(raw), "model": summary(full),
        "model_minus_mean_chroma_db": round(float(np.mean(full) - np.mean(mean)), 3),
    }
    if ensemble is not None:
        report["ensemble_bsds500"] = bench_ensemble(one, ensemble, items)
    # Every test set of the data folder (issue 16): the grey and mean-colour rows, PSNR mean and median,
    # SSIM, colourfulness against the truth's, for the model and its single network.
    from deepcolor.bench_quality import score_sets, test_sets

    models = {"model": model} if ensemble is None else {"model": model, "one_network": single}
    report["quality_test_sets"] = score_sets(models, test_sets(data), mean_uv)
    if "intel" in args.sections:
        report["ensemble_intel"] = bench_intel(data, Path(work) / "intel", fcfg, tcfg, rcfg, ccfg,
                                               args.jobs, args.intel_refs)
    # The semantic feature's worth: the same references and settings with and without it (one network).
    names = fcfg.features
    alt_names = tuple(n for n in names if n != "semantic") if "semantic" in names else names + ("semantic",)
    alt_model, _, _, alt_timings = train_pipeline(refs, Path(work) / "alt", fcfg.replace(features=alt_names),
                                                  tcfg, rcfg, ClusterConfig(n_clusters=1), args.jobs)
    alt, _ = score_model(alt_model, items)
    with_sem, without_sem = (one, alt) if "semantic" in names else (alt, one)
    report["semantic"] = {
        "features_with": list(names if "semantic" in names else alt_names),
        "features_without": list(alt_names if "semantic" in names else names),
        "with_semantic": summary(with_sem), "without_semantic": summary(without_sem),
        "gain_db": round(float(np.mean(with_sem) - np.mean(without_sem)), 3),
        "other_pipeline": alt_timings,
    }
    return model, times


# Most epochs of each baseline in the mirroring comparison (patience: the report's).
FLIP_EPOCHS = {"autoencoder": 40, "iizuka": 40, "unet-regression": 20}


def bench_baselines(ref_paths, items, intel_dir, intel_refs=600, intel_test_per_class=50, seed=0,
                    flip_epochs=None, scene_epochs=30):
    """The `baselines` section: mirroring on and off; Iizuka et al.'s scene loss on and off.

    Each run trains with the report's patience and at most `flip_epochs`
    (default `FLIP_EPOCHS`; its keys name the baselines compared) or
    `scene_epochs` epochs, and reports its training time, best and
    last epoch (1-based) and the mean and median PSNR of its colorizations.
    """
    from deepcolor.baselines import BASELINES
    from deepcolor.baselines.common import load_training_set
    from deepcolor.report import REPORT_PATIENCE, folder_labels

    def run(name, data, test, epochs, **settings):
        start = time.perf_counter()
        model = BASELINES[name](seed=seed, epochs=epochs, patience=REPORT_PATIENCE, **settings)
        model.fit_training_set(data)
        train_s = time.perf_counter() - start
        scores = [psnr(truth, model.colorize(y)) for _, y, truth in test]
        h = model.history_
        return {**settings, "n_images": len(data), "train_s": round(train_s, 1), "best_epoch": h["best_epoch"] + 1,
                "epochs_run": h["epochs_run"], "psnr_mean": statistics.fmean(scores),
                "psnr_median": statistics.median(scores)}

    out = {"patience": REPORT_PATIENCE, "flip": {}}
    data = load_training_set(ref_paths, 128, seed)
    for name, epochs in (flip_epochs or FLIP_EPOCHS).items():
        out["flip"][name] = [run(name, data, items, epochs, flip=flip) for flip in (False, True)]
    if not Path(intel_dir).is_dir():
        out["scene_loss"] = f"skipped: {intel_dir} not found"
        return out
    paths = find_images(Path(intel_dir) / "train")
    labels = folder_labels(paths)
    test = []
    for category in sorted(p for p in (Path(intel_dir) / "test").iterdir() if p.is_dir()):
        test += load_test_set(find_images(category)[:intel_test_per_class])
    out["scene_loss"] = [
        {"scene_labels": use, **run("iizuka", load_training_set(paths, 128, seed, labels if use else None,
                                                                 max_images=intel_refs), test, scene_epochs)}
        for use in (False, True)]
    out["scene_loss_test_images"] = len(test)
    return out


SECTIONS = ("quality", "intel", "parsing", "speed", "baselines", "personal")
DEFAULT_SECTIONS = ("quality", "intel", "parsing", "speed")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepcolor.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: $DEEPCOLOR_DATA or ../shared/data)")
    parser.add_argument("--refs", nargs="+", type=Path, help="reference folders (default: bsds500/train and val)")
    parser.add_argument("--test", type=Path, help="test folder (default: bsds500/test)")
    parser.add_argument("--limit", type=int, help="use only the first N test images")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--work", type=Path, help="keep features and model here (default: a temporary folder)")
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--intel-refs", type=int, default=3000,
                        help="seeded random subset of the Intel scenes train set used as references (default 3000)")
    parser.add_argument("--sections", nargs="*", default=list(DEFAULT_SECTIONS), choices=SECTIONS,
                        help="sections to run (default: all but baselines). quality: train on the references, "
                             "score the test set, the ensemble and semantic ablations; intel: the Intel scenes "
                             "ablation; parsing: the parsers on MSRC-v2; speed: colorize times, large photos, a "
                             "folder with --jobs, locally and on a local dask cluster; baselines: the comparison "
                             "systems' training choices (mirroring, Iizuka et al.'s scene loss; ~30 min); "
                             "personal: personal models on the Intel scenes against --model (~6 min)")
    parser.add_argument("--model", type=Path, help="model for the speed section when quality is not run, and "
                                                   "the generic model of the personal section (default: the "
                                                   "bundled one)")
    args = parser.parse_args(argv)

    data = args.data or default_data_dir()
    refs = args.refs or [data / "bsds500" / "train", data / "bsds500" / "val"]
    test_dir = args.test or data / "bsds500" / "test"
    for p in [*refs, test_dir]:
        if not p.is_dir():
            parser.error(f"{p}: no such folder (set --data or DEEPCOLOR_DATA)")
    if args.config:
        from deepcolor.config import load_toml

        cfgs = load_toml(args.config)
        fcfg, tcfg, rcfg, ccfg = cfgs["features"], cfgs["train"], cfgs["refine"], cfgs["clusters"]
    else:
        fcfg, tcfg, rcfg, ccfg = FeatureConfig(), TrainConfig(), RefineConfig(), ClusterConfig()

    import torch

    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "torch_threads": torch.get_num_threads(), "platform": platform.platform()},
              "settings": {"features": fcfg.to_dict(), "train": tcfg.to_dict(), "refine": rcfg.to_dict(),
                           "clusters": ccfg.to_dict(),
                           "refs": [str(r) for r in refs], "test": str(test_dir)}}
    test_paths = find_images(test_dir)[: args.limit]
    items = load_test_set(test_paths)
    y0 = items[0][1]
    from deepcolor.core import resize_to, working_shape

    report["daisy"] = bench_daisy(np.clip(resize_to(y0, working_shape(y0.shape, 256)), 0, 1))

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if "quality" in args.sections:
            model, _ = bench_quality(report, args, data, refs, items, work, fcfg, tcfg, rcfg, ccfg)
            model_dir = Path(work) / "model"
        else:
            from deepcolor.cli import DEFAULT_MODEL
            from deepcolor.ensemble import Model

            model_dir = args.model or DEFAULT_MODEL
            model = Model.load(model_dir)
            report["settings"]["model"] = str(model_dir)
        if "parsing" not in args.sections:
            report["parsing"] = "skipped: not in --sections"
        else:
            report["parsing"] = run_parsing(data, fcfg, test_paths[:50])
        if "speed" in args.sections:
            report["speed"] = bench_speed(model, model_dir, items, test_paths, work, args.jobs)
        if "baselines" in args.sections:
            ref_paths = [p for r in refs for p in find_images(r)]
            report["baselines"] = bench_baselines(ref_paths, items, data / "intel_scenes")
        if "personal" in args.sections:  # issue 17: personal models against --model (the bundled one)
            from deepcolor.bench_personal import run as run_personal

            report["personal"] = run_personal(data, Path(work) / "personal", args.model, jobs=args.jobs)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        from deepcolor.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
