"""Tests for a personal model (issue 17): `deepcolor train --init` (fine-tuning) and the bench section.

Tiny synthetic scenes and the tiny model of tests/conftest.py.
"""

import hashlib
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from deepcolor import bench_personal as bp
from deepcolor import train as bp_train
from deepcolor.clustering.config import ClusterConfig
from deepcolor.ensemble import Model
from deepcolor.clustering import image_descriptors
from deepcolor.features import load_parser
from deepcolor.extract import extract_folder, load_manifest, load_shards, ok_entries, read_shard
from deepcolor.networks import ChromaNet
from deepcolor.train import check_init_features, closest_network, fine_tune, train


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """torch on one thread (speed on 2-core CI)."""


@pytest.fixture
def init(tiny_model_dir):
    return Model.load(tiny_model_dir)


def test_fine_tune_single_network(tiny_features_dir, tiny_configs, init, tiny_model_dir):
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"].replace(lr=1e-3), ClusterConfig(n_clusters=1),
                      quiet=True, init_dir=tiny_model_dir)
    assert not model.is_ensemble and len(model.networks) == 1
    record = model.info["init"]
    assert record["model"] == str(tiny_model_dir) and record["network"] == 0 and record["lr"] == 1e-3
    assert record["settings_sha256"] == init.manifest.get("settings_sha256")
    assert record["manifest_sha256"] == hashlib.sha256((tiny_model_dir / "manifest.json").read_bytes()).hexdigest()
    assert record["folds"] == 5 and record["epochs"] == int(np.argmin(record["cv_mse"]))
    assert model.info["n_train_images"] == 6  # every reference trains the final network


def test_fine_tune_epochs_from_grey(tiny_features_dir, tiny_configs, init):
    """From a network that outputs grey, training on colourful references pays: at least one epoch."""
    shards = [(x, uv) for _, x, uv in load_shards(tiny_features_dir)]
    grey = ChromaNet(init.networks[0].in_dim, 16)
    with torch.no_grad():
        grey.out.weight.zero_()
        grey.out.bias.zero_()
    epochs, curve = bp_train.fine_tune_epochs(shards, tiny_configs["train"].replace(max_epochs=5), grey, folds=3)
    assert 1 <= epochs < len(curve) <= 6 and curve[epochs] < curve[0]


def test_fine_tune_zero_epochs_keeps_start(tiny_features_dir, tiny_configs, init):
    """A rate that only makes things worse: cross-validation keeps the starting network, unchanged."""
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"].replace(lr=50.0, max_epochs=3),
                      ClusterConfig(n_clusters=1), quiet=True)
    assert model.info["init"]["epochs"] == 0 and model.info["history"] is None
    a, b = model.networks[0], init.networks[0]
    for x, y in zip([*a.state().values(), a.mean, a.std], [*b.state().values(), b.mean, b.std], strict=True):
        np.testing.assert_array_equal(x, y)


def test_fine_tune_epochs_exception(tiny_features_dir, tiny_configs, init):
    shards = [(x, uv) for _, x, uv in load_shards(tiny_features_dir)][:1]
    with pytest.raises(ValueError, match="fine-tuning needs at least 2 usable reference images, got 1"):
        bp_train.fine_tune_epochs(shards, tiny_configs["train"], init.networks[0])


def test_fine_tune_starts_from_init(tiny_features_dir, tiny_configs, init):
    """No epoch run (a learning rate too small to move): the result is the initial network itself."""
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"].replace(lr=1e-12, max_epochs=1, patience=1),
                      ClusterConfig(n_clusters=1), quiet=True)
    a, b = model.networks[0], init.networks[0]
    for x, y in zip([*a.state().values(), a.mean, a.std], [*b.state().values(), b.mean, b.std], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)


def test_fine_tune_shape_from_init(tiny_features_dir, tiny_configs, init):
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"].replace(hidden=99, n_hidden_layers=1),
                      ClusterConfig(n_clusters=1), quiet=True)
    net = model.networks[0]
    assert net.hidden == init.networks[0].hidden
    assert net.n_hidden_layers == init.networks[0].n_hidden_layers


def test_fine_tune_few_references_one_network(tiny_features_dir, tiny_configs, init):
    """Fewer than 2 mu references: room for one cluster only, so the fine-tuned network is the model."""
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"], ClusterConfig(n_clusters=6, mu=40),
                      quiet=True)
    assert not model.is_ensemble


def test_fine_tune_ensemble(tiny_features_dir, tiny_configs, init):
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"], tiny_configs["clusters"], quiet=True)
    assert model.is_ensemble and len(model.networks) == 2
    assert model.info["init"]["network"] == 0 and "epochs" in model.info["init"]


@pytest.fixture(scope="module")
def init_ensemble(tiny_features_dir, tiny_configs):
    """An ensemble of two clusters trained on the tiny references (an initial model with a selector)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bp_train.train_ensemble(tiny_features_dir, tiny_configs["train"], tiny_configs["clusters"], quiet=True)
    finally:
        torch.set_num_threads(before)


def _descriptors(features_dir):
    return [read_shard(features_dir / e["shard"], ("gist", "semantic", "histogram"))
            for e in ok_entries(load_manifest(features_dir))]


def test_choose_network_for_as_choose_network(init_ensemble, tiny_configs):
    """From descriptors computed beforehand, the same choice as from the image itself."""
    rng = np.random.default_rng(0)
    fcfg = init_ensemble.feature_config
    for _ in range(4):
        gray = rng.random((24, 32)).astype(np.float32)
        d = image_descriptors(gray, load_parser(fcfg.semantic_parser, fcfg.histogram_groups), gist=True)
        assert init_ensemble.choose_network_for(d["gist"], d["semantic"], d["histogram"]) == \
            init_ensemble.choose_network(gray)
    single = Model(init_ensemble.networks[:1], init_ensemble.feature_config, init_ensemble.train_config)
    assert single.choose_network_for(None, None, None) == (0, None)


def test_initial_model_cv_error_unit(tiny_features_dir, init_ensemble):
    """The error of the unchanged model: each reference by its chosen network, per fold, weighted as in training."""
    shards = [(x, uv) for _, x, uv in load_shards(tiny_features_dir)]
    descriptors = _descriptors(tiny_features_dir)
    error, chosen = bp_train.initial_model_cv_error(init_ensemble, shards, descriptors, "uniform", folds=3)
    assert chosen == [init_ensemble.choose_network_for(*d)[0] for d in descriptors]
    assert set(chosen) <= set(range(len(init_ensemble.networks)))
    per_fold = []
    for _, held in bp_train.cv_folds(len(shards), 3, 0):
        per_fold.append(np.mean(np.concatenate([
            ((init_ensemble.networks[chosen[i]].predict(shards[i][0]) - shards[i][1]) ** 2).mean(axis=1)
            for i in held])))
    np.testing.assert_allclose(error, np.mean(per_fold), rtol=1e-6)
    weighted, _ = bp_train.initial_model_cv_error(init_ensemble, shards, descriptors, "psnr", folds=3)
    assert weighted != pytest.approx(error, rel=1e-9)  # the image weights count


def test_cv_folds_unit():
    folds = bp_train.cv_folds(7, 3, seed=1)
    assert len(folds) == 3
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(7))
    for kept, h in folds:
        assert sorted(np.concatenate([kept, h]).tolist()) == list(range(7)) and not set(kept) & set(h)
        assert list(h) == sorted(h) and list(kept) == sorted(kept)
    assert len(bp_train.cv_folds(2, 5)) == 2  # at most one group per reference
    with pytest.raises(ValueError, match="fine-tuning needs at least 2 usable reference images, got 1"):
        bp_train.cv_folds(1)


@pytest.mark.parametrize("initial_error, kept", [(0.0, True), (np.inf, False)])
def test_fine_tune_keeps_initial_ensemble_when_best(tiny_features_dir, tiny_configs, init_ensemble, monkeypatch,
                                                    initial_error, kept):
    """Cross-validation chooses between fine-tuning a network and the whole initial model, unchanged."""
    real = bp_train.initial_model_cv_error

    def error(*args, **kwargs):
        _, chosen = real(*args, **kwargs)
        return initial_error, chosen

    monkeypatch.setattr(bp_train, "initial_model_cv_error", error)
    model = fine_tune(tiny_features_dir, init_ensemble, tiny_configs["train"], ClusterConfig(n_clusters=6, mu=40),
                      quiet=True)
    record = model.info["init"]
    assert record["kept_initial_model"] is kept and record["initial_model_cv_mse"] == initial_error
    assert model.is_ensemble is kept
    if kept:
        assert model.clusters == init_ensemble.clusters and model.cluster_config == init_ensemble.cluster_config
        for a, b in zip(model.networks, init_ensemble.networks, strict=True):
            for x, y in zip(a.state().values(), b.state().values(), strict=True):
                np.testing.assert_array_equal(x, y)
        assert model.info["n_train_images"] == 6


@pytest.mark.parametrize("how, problem", [
    ("old format", "unreadable feature shard \\(.*gist is not a file in the archive.*rerun 'deepcolor features'"),
    ("nan histogram", "holds NaN or infinite values \\(1 of .*delete it and rerun 'deepcolor features'")])
def test_fine_tune_initial_ensemble_exception_broken_descriptors(tiny_features_dir, tiny_configs, init_ensemble,
                                                                 tmp_path, how, problem):
    """The initial ensemble's choice reads each reference's stored descriptors: a broken one names its shard."""
    import shutil

    shutil.copytree(tiny_features_dir, tmp_path / "features")
    shard = tmp_path / "features" / ok_entries(load_manifest(tmp_path / "features"))[0]["shard"]
    with np.load(shard) as data:
        arrays = dict(data)
    if how == "old format":  # features format 1: samples, no descriptors
        arrays = {k: arrays[k] for k in ("x", "uv")}
    else:
        arrays["histogram"][0] = np.nan
    np.savez(shard, **arrays)
    with pytest.raises(ValueError, match=re.escape(str(shard)) + ".*" + problem):
        fine_tune(tmp_path / "features", init_ensemble, tiny_configs["train"], ClusterConfig(n_clusters=6, mu=40),
                  quiet=True)


def test_fine_tune_initial_ensemble_real_errors(tiny_features_dir, tiny_configs, init_ensemble, tmp_path):
    """Unpatched: the record holds both errors and the choice follows them; the result saves and loads."""
    model = fine_tune(tiny_features_dir, init_ensemble, tiny_configs["train"].replace(lr=50.0, max_epochs=3),
                      ClusterConfig(n_clusters=6, mu=40), quiet=True)
    record = model.info["init"]
    assert record["kept_initial_model"] == (record["initial_model_cv_mse"] <= record["cv_mse"][record["epochs"]])
    assert model.is_ensemble == record["kept_initial_model"]
    model.save(tmp_path / "m")
    assert Model.load(tmp_path / "m").info["init"]["kept_initial_model"] == record["kept_initial_model"]


def test_fine_tune_single_network_init_no_initial_model_candidate(tiny_features_dir, tiny_configs, init):
    """A one-network start: its network unchanged is already the curve's first point; no second candidate."""
    model = fine_tune(tiny_features_dir, init, tiny_configs["train"], ClusterConfig(n_clusters=1), quiet=True)
    assert "kept_initial_model" not in model.info["init"]


def test_train_init_dispatches(tiny_features_dir, tiny_configs, init):
    model = train(tiny_features_dir, tiny_configs["train"], ClusterConfig(n_clusters=1), init=init)
    assert "init" in model.info


def test_closest_network_unit(tiny_features_dir, init):
    """A network that outputs grey is worse than the trained one on colourful references."""
    grey = ChromaNet(init.networks[0].in_dim, 16)
    with torch.no_grad():
        for p in grey.parameters():
            p.zero_()
    shards = [(x, uv) for _, x, uv in load_shards(tiny_features_dir)]
    two = Model([grey, init.networks[0]], init.feature_config, init.train_config)
    index, mse = closest_network(two, shards)
    assert index == 1 and mse[1] < mse[0]
    expected = np.mean([np.mean(uv.astype(np.float64) ** 2) for _, uv in shards])
    np.testing.assert_allclose(mse[0], expected, rtol=1e-5)


def test_check_init_features_exception(init, tiny_configs):
    other = tiny_configs["features"].replace(working_size=48, patch_size=5)
    with pytest.raises(ValueError, match=r"FEAT: these features were not made with the feature settings of the "
                                         r"initial model MODEL \(working_size: 32 in the model, 48 in the features; "
                                         r"patch_size: 7 in the model, 5 in the features\)"):
        check_init_features(init.feature_config, other, "FEAT", "MODEL")


def test_check_init_features_sampling_may_differ(init, tiny_configs):
    check_init_features(init.feature_config, tiny_configs["features"].replace(pixels_per_image=7, seed=3), "F")


def test_cli_train_init(tiny_features_dir, tiny_model_dir, tmp_path, run):
    rc, _, err = run("train", tiny_features_dir, "--init", tiny_model_dir, "--out", tmp_path / "mine",
                     "--clusters", "1", "--epochs", "3")
    assert rc == 0, err
    assert f"fine-tuned from network 0 of {tiny_model_dir} for " in err and "5-fold cross-validation" in err
    manifest = json.loads((tmp_path / "mine" / "manifest.json").read_text())
    assert manifest["info"]["init"]["model"] == str(tiny_model_dir)
    from deepcolor.train import FINETUNE_LR

    assert manifest["train_config"]["lr"] == FINETUNE_LR
    Model.load(tmp_path / "mine")


def _train_from_ensemble(features_dir, init_ensemble, folder, run, monkeypatch, initial_error):
    """`deepcolor train --init ENSEMBLE` with the whole initial model's held-out error set: its stderr."""
    init_ensemble.save(folder / "ensemble")
    real = bp_train.initial_model_cv_error
    monkeypatch.setattr(bp_train, "initial_model_cv_error", lambda *a, **k: (initial_error, real(*a, **k)[1]))
    rc, _, err = run("train", features_dir, "--init", folder / "ensemble", "--out", folder / "mine", "--epochs", "2")
    assert rc == 0, err
    return err


def test_cli_train_init_kept_initial_model(tiny_features_dir, init_ensemble, tmp_path, run, monkeypatch):
    """The initial ensemble kept whole: the command says so, and the saved model is that ensemble."""
    err = _train_from_ensemble(tiny_features_dir, init_ensemble, tmp_path, run, monkeypatch, 0.0)
    assert f"train: kept the initial model {tmp_path / 'ensemble'} unchanged (2 networks and its selector): its " \
           f"held-out MSE 0.000000 is not above the " in err and f"-> {tmp_path / 'mine'}" in err
    mine = Model.load(tmp_path / "mine")
    assert mine.is_ensemble and mine.info["init"]["kept_initial_model"] is True


def test_cli_train_init_initial_model_not_kept(tiny_features_dir, init_ensemble, tmp_path, run, monkeypatch):
    """The fine-tuned network wins: the summary gives the whole initial model's held-out error beside it."""
    err = _train_from_ensemble(tiny_features_dir, init_ensemble, tmp_path, run, monkeypatch, 1e9)
    assert "the whole initial model's 1000000000.000000)" in err and f"-> {tmp_path / 'mine'}" in err
    assert not Model.load(tmp_path / "mine").is_ensemble


def test_cli_train_init_lr(tiny_features_dir, tiny_model_dir, tmp_path, run):
    rc, _, err = run("train", tiny_features_dir, "--init", tiny_model_dir, "--out", tmp_path / "mine",
                     "--clusters", "1", "--epochs", "2", "--lr", "0.005")
    assert rc == 0, err
    assert json.loads((tmp_path / "mine" / "manifest.json").read_text())["train_config"]["lr"] == 0.005


def test_cli_train_init_exception_features_folder(tiny_features_dir, tmp_path, run):
    rc, _, err = run("train", tiny_features_dir, "--init", tiny_features_dir, "--out", tmp_path / "mine")
    assert rc == 2 and "this is a features folder" in err and not (tmp_path / "mine").exists()


def test_cli_train_init_exception_missing(tiny_features_dir, tmp_path, run):
    rc, _, err = run("train", tiny_features_dir, "--init", tmp_path / "nowhere", "--out", tmp_path / "mine")
    assert rc == 2 and "nowhere" in err


def test_cli_train_init_exception_other_features(tiny_refs, tiny_configs, tiny_model_dir, tmp_path, run):
    tiny_refs(tmp_path / "refs")
    extract_folder([tmp_path / "refs"], tmp_path / "f48", tiny_configs["features"].replace(working_size=48),
                   quiet=True)
    rc, _, err = run("train", tmp_path / "f48", "--init", tiny_model_dir, "--out", tmp_path / "mine")
    assert rc == 2 and "working_size: 32 in the model, 48 in the features" in err


# --- the bench section, on a tiny stand-in for the data folder -------------------------------

def test_means_and_targets_unit():
    row = {"bundled": {"psnr": 20.0, "colourfulness": 10.0},
           "fine_tuned": {"psnr": 24.0, "colourfulness": 11.0},
           "picked": {"psnr": 23.0, "colourfulness": 9.0, "build_s": 100.0},
           "scratch": {"psnr": 23.5, "colourfulness": 12.0}}
    bad = {**row, "fine_tuned": {"psnr": 20.5, "colourfulness": 9.0}}
    cats = {"a": row, "b": bad}
    assert bp.means(cats)["fine_tuned"] == {"psnr": 22.25, "colourfulness": 10.0}
    t = bp.check_targets(cats)
    assert t["fine_tuned_over_bundled_mean_db"] == {"value": 2.25, "met": False}
    assert t["fine_tuned_over_bundled_min_db"] == {"value": 0.5, "met": False}
    assert t["fine_tuned_over_scratch_categories"] == {"value": 1, "met": False}
    assert t["picked_over_bundled_mean_db"] == {"value": 3.0, "met": True}
    assert t["build_max_s"] == {"value": 100.0, "met": True}


def test_category_split_exception():
    with pytest.raises(ValueError, match="split must be 'test' or 'val', got 'train'"):
        bp.category_split("data", "forest", "train")


def _tiny_data(root, tiny_scene):
    """A stand-in for the data folder: Intel forest and street (15 train, 4 test tiny scenes), one photo elsewhere."""
    for split, n in (("train", 15), ("test", 4)):
        for seed in range(n):
            for cat, offset in (("forest", 0), ("street", 100)):
                folder = root / "intel_scenes" / split / cat
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(tiny_scene(40, 33, seed + offset + (50 if split == "test" else 0))).save(
                    folder / f"{seed:03d}.png")
    for other in ("imagenet_sample/train", "bsds500/train", "bsds500/val", "bsds500/test"):
        (root / other).mkdir(parents=True)
        Image.fromarray(tiny_scene(37, 45, 999)).save(root / other / "x.png")
    return root


def test_run_category_tiny(tmp_path, tiny_scene, tiny_model_dir):
    """All four rows on a data folder of tiny scenes: scores, timings, and picks from the right category."""
    data = _tiny_data(tmp_path / "data", tiny_scene)
    init = Model.load(tiny_model_dir)
    out = bp.run_category("forest", data, tmp_path / "work", init, tiny_model_dir, tmp_path / "cache",
                          n_refs=3, n_test=3, n_targets=2)
    assert out["n_refs"] == 3 and out["n_scored"] == 3
    for m in bp.METHODS:
        assert 5 < out[m]["psnr"] < 60 and out[m]["colourfulness"] >= 0
    assert out["picked"]["build_s"] > 0 and out["picked"]["picked_intel"] <= 3
    for m in ("fine_tuned", "picked"):  # a one-network start: nothing to keep whole
        assert out[m]["kept_initial_model"] is False and out[m]["init_network"] == 0
    assert len(os.listdir(tmp_path / "work" / "forest" / "picked" / "references")) == 3


def test_fine_tune_threads_restored(tiny_features_dir, tiny_configs, init):
    """Fine-tuning runs on one torch thread and puts the caller's thread count back."""
    torch.set_num_threads(2)
    fine_tune(tiny_features_dir, init, tiny_configs["train"].replace(max_epochs=1), ClusterConfig(n_clusters=1),
              quiet=True)
    assert torch.get_num_threads() == 2


def test_bench_section_personal(tmp_path, tiny_scene, tiny_model_dir, monkeypatch, capsys):
    """`python -m deepcolor.bench --sections personal --model M`: the section runs and reports every target."""
    from deepcolor import bench

    data = _tiny_data(tmp_path / "data", tiny_scene)
    monkeypatch.setattr(bp, "CATEGORIES", ("forest", "street"))
    assert bench.main(["--data", str(data), "--sections", "personal", "--model", str(tiny_model_dir),
                       "--work", str(tmp_path / "work"), "--jobs", "1", "--out", str(tmp_path / "b.json")]) == 0
    report = json.loads((tmp_path / "b.json").read_text())["personal"]
    assert sorted(report["categories"]) == ["forest", "street"] and report["init_model"] == str(tiny_model_dir)
    assert set(report["mean"]) >= set(bp.METHODS) and len(report["targets"]) == 7
    assert report["pool_images"] == 33  # 30 Intel train photos, one each in ImageNet train, BSDS500 train and val
