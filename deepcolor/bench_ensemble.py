"""Issue 4's ablation: one network against the ensemble with clusters chosen by global descriptor or by the selector.

Every network of the ensemble colorizes every test image once
(`ensemble_table`); the selectors' picks are then scored from that table, with
the oracle (the best network per image) as the upper bound of any selector.
"""


import numpy as np

from deepcolor.bench_pipeline import train_pipeline
from deepcolor.clustering import combine, image_descriptors, select_cluster
from deepcolor.chroma import refine_chroma, working_luma
from deepcolor.colorize import compose
from deepcolor.features import compute_features, load_parser
from deepcolor.images.formats import find_images
from deepcolor.metrics import psnr
from deepcolor.features.labelsets import select_photos
from deepcolor.testsets import load_test_set, score_model, summary


def ensemble_table(model, items):
    """What every network of an ensemble does on every test image, for the selectors' ablation.

    Per image: the global descriptors and semantic histogram, and the PSNR of
    the colorization by each network (features computed once, each network's
    U, V refined and composed exactly as `colorize_luma` does).

    Returns
    -------
    dict of ``psnr`` (n_images, n_networks), ``gist``, ``semantic``, ``histogram`` (n_images, .)
    """
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
    ccfg = model.cluster_config
    desc = combine(table["gist"], table["semantic"], ccfg.descriptor)
    picks = np.array([select_cluster(d, h, model.centers, model.histograms, model.layers, n_candidates,
                                     distance or ccfg.histogram_distance, search or ccfg.search_layers)[0]
                      for d, h in zip(desc, table["histogram"])])
    return table["psnr"][np.arange(len(picks)), picks], picks


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
