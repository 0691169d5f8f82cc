"""Tests for a personal model (issue 17): `deepcolor train --init` (fine-tuning) and the bench section.

Tiny synthetic scenes and the tiny model of tests/conftest.py.
"""

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from deepcolor import bench_personal as bp
from deepcolor import train as bp_train
from deepcolor.clustering.config import ClusterConfig
from deepcolor.ensemble import Model
from deepcolor.extract import extract_folder, load_shards
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
