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
- ``speed`` (`deepcolor.bench_speed`): issue 19's table, each row beside its floor or peer
  measured in the same run, with the issue's target and pass or fail: ``deepcolor colorize`` of
  one photo (whole command) against reading and writing it with OpenCV; seconds per photo (60
  photos, one process) of the model and of a patch+DAISY network against the ECCV16 network's
  forward pass (``rz-colorization``, installed without dependencies by ``make bench``); the test
  folder with ``--jobs N`` against ``--jobs 1``, and on a local dask cluster of N workers against
  ``--jobs N`` (the cluster's start timed apart); a 12-megapixel photo file to file in a fresh
  process against decoding and encoding it, with the process's peak resident memory. Also:
  colorize time per test image in memory (all) and file to file (the first 50), torch on one
  thread as `deepcolor colorize` runs it, and a 50-megapixel photo. Wall times are the least of
  two alternating runs; the load average before and after is reported.
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

The sections' code: `deepcolor.bench_pipeline` (training, timed), `deepcolor.bench_ensemble`
(issue 4's ablation), `deepcolor.bench_speed`, `deepcolor.bench_quality`, `deepcolor.bench_parsing`,
`deepcolor.bench_personal`; the test sets and their grey inputs: `deepcolor.testsets`.

Run ``python -m deepcolor.bench --help`` for the options.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from skimage.feature import daisy

from deepcolor.bench_ensemble import bench_ensemble, bench_intel
from deepcolor.bench_parsing import bench_parsing
from deepcolor.bench_personal import run as run_personal
from deepcolor.bench_pipeline import references_mean_chroma, train_pipeline
from deepcolor.bench_quality import score_sets, test_sets
from deepcolor.bench_speed import bench_speed
from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.clustering.config import ClusterConfig
from deepcolor.features.config import FeatureConfig
from deepcolor.refine.config import RefineConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.settings import load_settings
from deepcolor.features import daisy_features
from deepcolor.features.parsers import default_parser_dir
from deepcolor.features.teacher import ADE20K_MODEL_NAME
from deepcolor.files import atomic_write_text
from deepcolor.images.formats import find_images
from deepcolor.metrics import psnr
from deepcolor.report import REPORT_PATIENCE, folder_labels
from deepcolor.resize import resize_to, working_shape
from deepcolor.testsets import default_data_dir, load_test_set, score_constant_chroma, score_model, summary


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_daisy(gray, repeat=15):
    """Median seconds of each DAISY backend on one image, and their ratio."""
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


def run_parsing(data, fcfg, time_photos):
    """The ``parsing`` section (`deepcolor.bench_parsing`): the configured grey parser against the teacher and the old student."""
    teacher = data / "models" / ADE20K_MODEL_NAME
    if not teacher.is_file():
        return f"skipped: {teacher} not found"
    parser = default_parser_dir() if fcfg.semantic_parser == "default" else Path(fcfg.semantic_parser)
    return bench_parsing(data, teacher, parser, old_parser_dir=default_parser_dir().parent / "parser-v1",
                         time_photos=time_photos, threads=2)


def bench_quality(report, args, data, refs, items, work, fcfg, tcfg, rcfg, ccfg):
    """The `quality` and `intel` sections: train on the references, score the test set, the ablations.

    Returns the default model (saved in work/model) and its in-memory seconds per test image.
    """
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
    from deepcolor.baselines import BASELINES  # lazy: torch is heavy
    from deepcolor.baselines.data import load_training_set
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


def _build_parser():
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
    return parser


def _inputs(parser, args):
    """The data folder, reference folders, test folder and the four settings of a run (usage errors end it)."""
    data = args.data or default_data_dir()
    refs = args.refs or [data / "bsds500" / "train", data / "bsds500" / "val"]
    test_dir = args.test or data / "bsds500" / "test"
    for p in [*refs, test_dir]:
        if not p.is_dir():
            parser.error(f"{p}: no such folder (set --data or DEEPCOLOR_DATA)")
    if args.config:
        cfgs = load_settings(args.config)
        fcfg, tcfg, rcfg, ccfg = cfgs["features"], cfgs["train"], cfgs["refine"], cfgs["clusters"]
    else:
        fcfg, tcfg, rcfg, ccfg = FeatureConfig(), TrainConfig(), RefineConfig(), ClusterConfig()
    return data, refs, test_dir, (fcfg, tcfg, rcfg, ccfg)


def _run_sections(report, args, data, refs, items, test_paths, configs):
    """The sections after ``daisy``, each adding its key to `report`, in a work folder (temporary by default)."""
    fcfg, tcfg, rcfg, ccfg = configs
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if "quality" in args.sections:
            model, _ = bench_quality(report, args, data, refs, items, work, fcfg, tcfg, rcfg, ccfg)
            model_dir = Path(work) / "model"
        else:
            from deepcolor.ensemble import Model  # lazy: torch is heavy

            model_dir = args.model or DEFAULT_MODEL
            model = Model.load(model_dir)
            report["settings"]["model"] = str(model_dir)
        if "parsing" not in args.sections:
            report["parsing"] = "skipped: not in --sections"
        else:
            report["parsing"] = run_parsing(data, fcfg, test_paths[:50])
        if "speed" in args.sections:
            report["speed"] = bench_speed(model, model_dir, items, test_paths, work, args.jobs, refs=refs)
        if "baselines" in args.sections:
            ref_paths = [p for r in refs for p in find_images(r)]
            report["baselines"] = bench_baselines(ref_paths, items, data / "intel_scenes")
        if "personal" in args.sections:  # issue 17: personal models against --model (the bundled one)
            report["personal"] = run_personal(data, Path(work) / "personal", args.model, jobs=args.jobs)


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    data, refs, test_dir, configs = _inputs(parser, args)
    fcfg, tcfg, rcfg, ccfg = configs

    import torch  # lazy: torch is heavy, --help stays fast

    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "torch_threads": torch.get_num_threads(), "platform": platform.platform()},
              "settings": {"features": fcfg.to_dict(), "train": tcfg.to_dict(), "refine": rcfg.to_dict(),
                           "clusters": ccfg.to_dict(),
                           "refs": [str(r) for r in refs], "test": str(test_dir)}}
    test_paths = find_images(test_dir)[: args.limit]
    items = load_test_set(test_paths)
    y0 = items[0][1]
    report["daisy"] = bench_daisy(np.clip(resize_to(y0, working_shape(y0.shape, 256)), 0, 1))
    _run_sections(report, args, data, refs, items, test_paths, configs)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
