"""Tests for the pipeline's stages: extract, train, the model directory, colorize.

Tiny synthetic references (see the shared block of tests/conftest.py): odd,
non-square scenes whose colour follows their luminance, so a tiny network
trained for a fraction of a second colorizes them far better than grey.
"""

import io
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from deepcolor import files as dio
from deepcolor.color import rgb_to_gray_u8, rgb_to_yuv
from deepcolor.colorize import colorize_file, colorize_luma, plan_outputs
from deepcolor.features.config import FeatureConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.ensemble import Model, ModelError
from deepcolor.extract import MANIFEST, extract_folder, load_manifest, load_shards
from deepcolor.images.picture import ImageError
from deepcolor.networks import predict, train_network
from deepcolor.train import split_images, train_model

# Features at most 48 px wide: the references below are not resized, so a
# sample can be traced back to its pixel.
FCFG = FeatureConfig(features=("patch", "daisy"), working_size=48, daisy_radius=3, pixels_per_image=200)
FAST = TrainConfig(hidden=8, lr=1e-2, batch_size=128, max_epochs=4, patience=2, val_fraction=0.3)


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread (speed on 2-core CI; results do not depend on it)."""


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kwargs)
    return path


def _sepia(h, w):
    """A uniformly tinted photo: Y varies, U and V are the same everywhere."""
    from deepcolor.color import yuv_to_rgb

    rows, cols = np.mgrid[0:h, 0:w]
    y = 0.25 + 0.5 * (rows + cols) / (h + w)
    yuv = np.stack([y, np.full_like(y, -0.05), np.full_like(y, 0.06)], axis=-1)
    return np.clip(np.rint(yuv_to_rgb(yuv) * 255), 0, 255).astype(np.uint8)


def _png_bytes(image):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _snapshot(root):
    """{path: (bytes, mtime_ns)} of every file under root."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _psnr(truth, pred):
    mse = np.mean((truth.astype(np.float64) - pred.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def _luma_u8(rgb):
    """BT.601 luminance in [0, 1], float64, of a uint8 RGB image."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


@pytest.fixture
def ref_tree(tmp_path, tiny_scene):
    """A nested reference folder: 3 good, 1 duplicate, 3 (near-)grey, 4 bad files, 1 non-image."""
    root = tmp_path / "refs"
    good = {
        "a.png": _save(root / "a.png", tiny_scene(40, 33, 0)),
        "sub/b.jpg": _save(root / "sub" / "b.jpg", tiny_scene(37, 45, 1), quality=95),
        "sub/deeper/c.png": _save(root / "sub" / "deeper" / "c.png", tiny_scene(41, 39, 2)),
    }
    (root / "sub" / "a_copy.png").write_bytes((root / "a.png").read_bytes())
    grey = rgb_to_gray_u8(tiny_scene(35, 43, 3))
    near_grey = {
        "grey_rgb.png": _save(root / "grey_rgb.png", np.repeat(grey[..., None], 3, axis=2)),
        "sub/sepia.png": _save(root / "sub" / "sepia.png", _sepia(39, 31)),
        "grey_l.png": _save(root / "grey_l.png", grey),  # a grey file: skipped the same way (issue 18)
    }
    assert Image.open(near_grey["grey_rgb.png"]).mode == "RGB"
    trunc = _png_bytes(tiny_scene(40, 33, 4))
    bad = {
        "empty.png": (root / "empty.png", "empty file (0 bytes)"),
        "trunc.png": (root / "trunc.png", "corrupt or truncated image"),
        "sub/notes.png": (root / "sub" / "notes.png", "not an image file that Pillow can read"),
        "tiny.png": (_save(root / "tiny.png", tiny_scene(3, 40, 5)), "patch size 7 needs an image of at least 4"),
    }
    (root / "empty.png").write_bytes(b"")
    (root / "trunc.png").write_bytes(trunc[: len(trunc) // 2])
    (root / "sub" / "notes.png").write_text("not a picture\n")
    (root / "readme.txt").write_text("ignored: not an image suffix\n")
    return {"root": root, "good": good, "near_grey": near_grey, "bad": bad,
            "duplicate": root / "sub" / "a_copy.png"}


def _by_source(manifest):
    return {e["source"]: e for e in manifest["images"]}


def _shard_stats(out_dir):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out_dir / "shards").iterdir()}


# --- extract_folder ----------------------------------------------------------


def test_extract_folder_counts_and_files(ref_tree, tmp_path):
    out = tmp_path / "features"
    manifest = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    assert manifest["counts"] == {"ok": 3, "near-grey": 3, "duplicate": 1, "failed": 4}
    assert manifest["reused"] == 0
    assert manifest["feature_dim"] == FCFG.dim == 49 + 32
    assert manifest["feature_config"] == FCFG.to_dict()
    assert json.loads((out / MANIFEST).read_text()) == manifest
    assert load_manifest(out) == manifest
    sources = [e["source"] for e in manifest["images"]]
    assert sources == sorted(sources)
    assert len(sources) == 11  # readme.txt is not listed
    # one shard per ok reference, nothing else (no leftover temporary files)
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(
        e["shard"].split("/")[1] for e in manifest["images"] if e["status"] == "ok")
    assert sorted(os.listdir(out)) == [MANIFEST, "shards"]


def test_extract_folder_shard_shape_dtype(ref_tree, tmp_path):
    out = tmp_path / "features"
    manifest = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    entries = _by_source(manifest)
    for name, path in ref_tree["good"].items():
        e = entries[str(path)]
        assert e["status"] == "ok", name
        h, w = Image.open(path).size[::-1]
        assert e["size"] == [h, w]  # at most 48 px: not resized
        assert e["n_pixels"] == 200
        with np.load(out / e["shard"], allow_pickle=False) as data:
            assert data["x"].shape == (200, FCFG.dim) and data["x"].dtype == np.float32
            assert data["uv"].shape == (200, 2) and data["uv"].dtype == np.float32


def test_extract_folder_samples_pair_pixel_with_its_chroma(ref_tree, tmp_path):
    # Each sample's patch centre (feature 24 of the 7x7 patch) and its (U, V)
    # are the Y, U, V of one pixel of the reference.
    out = tmp_path / "features"
    manifest = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    path = ref_tree["good"]["a.png"]
    yuv = rgb_to_yuv(np.asarray(Image.open(path))).reshape(-1, 3)  # (H*W, 3)
    with np.load(out / _by_source(manifest)[str(path)]["shard"], allow_pickle=False) as data:
        samples = np.column_stack([data["x"][:, 24], data["uv"]])  # (200, 3)
    dist = np.abs(samples[:, None, :] - yuv[None, :, :]).max(axis=-1)  # (200, H*W)
    assert dist.min(axis=1).max() < 1e-5
    # and they are not all the same pixel: both regions are sampled
    assert (samples[:, 2] > 0.1).any() and (samples[:, 2] < -0.04).any()


def test_extract_folder_near_grey_skipped(ref_tree, tmp_path):
    manifest = extract_folder([ref_tree["root"]], tmp_path / "features", FCFG, quiet=True)
    entries = _by_source(manifest)
    for path in ref_tree["near_grey"].values():
        e = entries[str(path)]
        assert e["status"] == "near-grey"
        assert e["chroma_spread"] < FCFG.min_chroma_spread
        assert "shard" not in e
    for path in ref_tree["good"].values():
        assert entries[str(path)]["chroma_spread"] > 0.1  # the colour scenes are far above it


def test_extract_folder_near_grey_logged(ref_tree, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="deepcolor"):
        extract_folder([ref_tree["root"]], tmp_path / "features", FCFG, quiet=True)
    for path in ref_tree["near_grey"].values():
        assert any(str(path) in r.getMessage() and "near-grey" in r.getMessage() for r in caplog.records)


def test_extract_folder_duplicate(ref_tree, tmp_path):
    manifest = extract_folder([ref_tree["root"]], tmp_path / "features", FCFG, quiet=True)
    e = _by_source(manifest)[str(ref_tree["duplicate"])]
    assert e["status"] == "duplicate"
    assert e["duplicate_of"] == str(ref_tree["good"]["a.png"])


def test_extract_folder_bad_files_named(ref_tree, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="deepcolor"):
        manifest = extract_folder([ref_tree["root"]], tmp_path / "features", FCFG, quiet=True)
    entries = _by_source(manifest)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for name, (path, problem) in ref_tree["bad"].items():
        e = entries[str(path)]
        assert e["status"] == "failed", name
        assert e["error"].startswith(f"{path}: "), e["error"]
        assert problem in e["error"]
        assert sum(str(path) in msg for msg in errors) == 1, name


def test_extract_folder_inputs_untouched(ref_tree, tmp_path):
    before = _snapshot(ref_tree["root"])
    extract_folder([ref_tree["root"]], tmp_path / "features", FCFG, quiet=True)
    assert _snapshot(ref_tree["root"]) == before


def test_extract_folder_resume_reuses_everything(ref_tree, tmp_path):
    out = tmp_path / "features"
    first = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    stats = _shard_stats(out)
    second = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    assert second["counts"] == first["counts"]
    assert second["reused"] == first["counts"]["ok"] + first["counts"]["near-grey"] == 6
    assert all(e.get("reused") for e in second["images"] if e["status"] in ("ok", "near-grey"))
    assert _shard_stats(out) == stats  # not rewritten: same inode, same mtime
    strip = lambda m: [{k: v for k, v in e.items() if k != "reused"} for e in m["images"]]  # noqa: E731
    assert strip(second) == strip(first)


def test_extract_folder_resume_changed_image(ref_tree, tmp_path, tiny_scene):
    out = tmp_path / "features"
    first = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    changed = ref_tree["good"]["sub/deeper/c.png"]
    old_shard = _by_source(first)[str(changed)]["shard"]
    stats = _shard_stats(out)
    _save(changed, tiny_scene(41, 39, 99))
    second = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    entries = _by_source(second)
    assert second["reused"] == 5  # 2 ok + 3 (near-)grey
    assert entries[str(changed)]["status"] == "ok" and not entries[str(changed)].get("reused")
    assert entries[str(changed)]["shard"] != old_shard
    after = _shard_stats(out)
    for name, stat in stats.items():  # the other shards are untouched
        assert after[name] == stat
    for path in (ref_tree["good"]["a.png"], ref_tree["good"]["sub/b.jpg"]):
        assert entries[str(path)]["reused"] is True


def test_extract_folder_resume_changed_setting(ref_tree, tmp_path):
    out = tmp_path / "features"
    first = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    second = extract_folder([ref_tree["root"]], out, FCFG.replace(pixels_per_image=150), quiet=True)
    assert second["reused"] == 0
    assert not any(e.get("reused") for e in second["images"])
    old = {e["shard"] for e in first["images"] if e["status"] == "ok"}
    new = {e["shard"] for e in second["images"] if e["status"] == "ok"}
    assert len(new) == 3 and not old & new
    assert all(e["n_pixels"] == 150 for e in second["images"] if e["status"] == "ok")


def test_extract_folder_resume_missing_shard(ref_tree, tmp_path):
    out = tmp_path / "features"
    first = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    entry = _by_source(first)[str(ref_tree["good"]["a.png"])]
    (out / entry["shard"]).unlink()
    second = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    assert second["reused"] == 5  # 2 ok + 3 (near-)grey
    assert (out / entry["shard"]).is_file()


def test_extract_folder_resume_corrupt_manifest(ref_tree, tmp_path, caplog):
    out = tmp_path / "features"
    extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    (out / MANIFEST).write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="deepcolor"):
        second = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    assert second["reused"] == 0 and second["counts"]["ok"] == 3
    assert any("starting afresh" in r.getMessage() and str(out / MANIFEST) in r.getMessage()
               for r in caplog.records)


def _shard_arrays(out, manifest):
    arrays = {}
    for e in manifest["images"]:
        if e["status"] == "ok":
            with np.load(out / e["shard"], allow_pickle=False) as data:
                arrays[e["source"]] = (data["x"].tobytes(), data["uv"].tobytes())
    return arrays


def test_extract_folder_deterministic(ref_tree, tmp_path):
    one = extract_folder([ref_tree["root"]], tmp_path / "one", FCFG, quiet=True)
    two = extract_folder([ref_tree["root"]], tmp_path / "two", FCFG, quiet=True)
    assert _shard_arrays(tmp_path / "one", one) == _shard_arrays(tmp_path / "two", two)
    assert len(_shard_arrays(tmp_path / "one", one)) == 3


def test_extract_folder_seed_changes_samples(ref_tree, tmp_path):
    zero = extract_folder([ref_tree["root"]], tmp_path / "zero", FCFG, quiet=True)
    one = extract_folder([ref_tree["root"]], tmp_path / "one", FCFG.replace(seed=1), quiet=True)
    a, b = _shard_arrays(tmp_path / "zero", zero), _shard_arrays(tmp_path / "one", one)
    assert a.keys() == b.keys()
    for source in a:
        assert a[source][1] != b[source][1], source


def test_extract_folder_parallel_same_as_serial(ref_tree, tmp_path):
    serial = extract_folder([ref_tree["root"]], tmp_path / "serial", FCFG, quiet=True)
    parallel = extract_folder([ref_tree["root"]], tmp_path / "parallel", FCFG, jobs=2, quiet=True)
    assert parallel["counts"] == serial["counts"]
    assert _shard_arrays(tmp_path / "parallel", parallel) == _shard_arrays(tmp_path / "serial", serial)


def test_extract_folder_several_folders(tmp_path, tiny_refs, caplog):
    tiny_refs(tmp_path / "one", seeds=[0, 1])
    tiny_refs(tmp_path / "two", seeds=[2])
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.WARNING, logger="deepcolor"):
        manifest = extract_folder([tmp_path / "one", tmp_path / "empty", tmp_path / "two"],
                                  tmp_path / "features", FCFG, quiet=True)
    assert manifest["counts"] == {"ok": 3}
    assert any(f"{tmp_path / 'empty'}: no image files found" in r.getMessage() for r in caplog.records)


def test_extract_folder_exception_empty(tmp_path):
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=re.escape(f"no reference images found in {tmp_path / 'refs'}")):
        extract_folder([tmp_path / "refs"], tmp_path / "features", FCFG, quiet=True)
    assert not (tmp_path / "features").exists()


def test_extract_folder_exception_nonexistent(tmp_path):
    with pytest.raises(ImageError, match=re.escape(f"{tmp_path / 'nope'}: no such file or folder")):
        extract_folder([tmp_path / "nope"], tmp_path / "features", FCFG, quiet=True)


# --- load_manifest / load_shards ---------------------------------------------


def test_load_manifest_exception_missing(tmp_path):
    match = f"{tmp_path / MANIFEST}: no features manifest here; run 'deepcolor features' first"
    with pytest.raises(ValueError, match=re.escape(match)):
        load_manifest(tmp_path)


def test_load_manifest_exception_malformed(tmp_path):
    (tmp_path / MANIFEST).write_text('{"format": "deepcolor-features",')
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / MANIFEST}: unreadable features manifest")):
        load_manifest(tmp_path)


@pytest.mark.parametrize("data, shown", [
    ({"format": "deepcolor-model", "format_version": 1}, "format='deepcolor-model', version=1"),
    ({"format": "deepcolor-features", "format_version": 1}, "format='deepcolor-features', version=1"),
    ({}, "format=None, version=None"),
])
def test_load_manifest_exception_wrong_format(tmp_path, data, shown):
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    match = f"{tmp_path / MANIFEST}: not a deepcolor features manifest of format version 2 ({shown})"
    with pytest.raises(ValueError, match=re.escape(match)):
        load_manifest(tmp_path)


def test_load_manifest_exception_not_an_object(tmp_path):
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / MANIFEST))):
        load_manifest(tmp_path)


def test_load_shards_only_ok(ref_tree, tmp_path):
    out = tmp_path / "features"
    manifest = extract_folder([ref_tree["root"]], out, FCFG, quiet=True)
    shards = load_shards(out)
    assert [s for s, _, _ in shards] == sorted(str(p) for p in ref_tree["good"].values())
    assert all(x.shape == (200, FCFG.dim) and uv.shape == (200, 2) for _, x, uv in shards)
    model = train_model(out, FAST, quiet=True)  # near-grey, duplicate and failed entries are left out
    assert model.info["n_train_images"] + model.info["n_val_images"] == manifest["counts"]["ok"] == 3


def test_load_shards_exception_missing_shard(tiny_features_dir, tmp_path):
    features = tmp_path / "features"
    shutil.copytree(tiny_features_dir, features)
    shard = next((features / "shards").iterdir())
    shard.unlink()
    with pytest.raises(ValueError, match=re.escape(f"{shard}: unreadable feature shard")):
        load_shards(features)


# --- split_images ------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 7, 40])
@pytest.mark.parametrize("val_fraction", [0.05, 0.3, 0.85])
def test_split_images_invariant(n, val_fraction):
    train, val = split_images(n, val_fraction, seed=3)
    assert len(train) >= 1 and len(val) >= 1
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(n))  # disjoint, complete
    assert list(train) == sorted(train) and list(val) == sorted(val)
    assert len(val) == min(n - 1, max(1, round(n * val_fraction)))


def test_split_images_seeded():
    a = split_images(40, 0.3, seed=5)
    b = split_images(40, 0.3, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(split_images(40, 0.3, seed=s)[1], a[1]) for s in (6, 7, 8))


@pytest.mark.parametrize("n", [0, 1])
def test_split_images_exception(n):
    with pytest.raises(ValueError, match=re.escape(f"training needs at least 2 usable reference images, got {n}")):
        split_images(n, 0.1, seed=0)


# --- train_model -------------------------------------------------------------


def test_train_model_unit(tiny_features_dir, tiny_configs):
    model = train_model(tiny_features_dir, FAST, quiet=True)
    assert isinstance(model, Model) and len(model.networks) == 1
    assert model.feature_config == tiny_configs["features"]
    assert model.train_config == FAST
    info = model.info
    assert info["n_train_images"] + info["n_val_images"] == 6 and info["n_val_images"] == 2
    assert info["n_train_pixels"] + info["n_val_pixels"] == 6 * 200
    sources = [s for s, _, _ in load_shards(tiny_features_dir)]
    assert len(info["val_images"]) == info["n_val_images"] and set(info["val_images"]) < set(sources)
    h = info["history"]
    assert 1 <= h["epochs_run"] <= FAST.max_epochs == len(h["val_mse"])
    assert h["best_val_mse"] == min(h["val_mse"])
    uv = model.predict_uv(np.zeros((5, model.feature_config.dim), np.float32))
    assert uv.shape == (5, 2) and uv.dtype == np.float32


def test_train_model_learns(tiny_features_dir, tiny_configs):
    # Held-out MSE of U, V well below predicting zero chroma (grey) for the held-out pixels.
    model = train_model(tiny_features_dir, tiny_configs["train"], quiet=True)
    shards = {s: uv for s, _, uv in load_shards(tiny_features_dir)}
    grey_mse = np.mean(np.concatenate([shards[s] for s in model.info["val_images"]]) ** 2)
    assert model.info["history"]["best_val_mse"] < 0.1 * grey_mse


def _state(model):
    """Network 0's arrays by torch's names, its normalisation included."""
    net = model.networks[0]
    return {**net.state(), "mean": net.mean, "std": net.std}


def test_train_network_keeps_best_weights(rng):
    # Held-out targets are the negated training targets: the better the fit,
    # the worse the held-out MSE, so the best epoch is an early one and the
    # network returned must be that epoch's, not the last.
    x = rng.normal(size=(300, 5)).astype(np.float32)
    uv = np.stack([x[:, 0] - x[:, 1], 0.5 * x[:, 2]], axis=1).astype(np.float32) * 0.1
    cfg = FAST.replace(max_epochs=6, patience=6)
    net, h = train_network(x, uv, x, -uv, cfg)
    assert h["epochs_run"] == 6 and h["best_epoch"] < 5
    assert h["val_mse"][-1] > h["best_val_mse"]
    assert float(np.mean((predict(net, x) + uv) ** 2)) == pytest.approx(h["best_val_mse"], rel=1e-5)


def test_train_model_same_seed_same_weights(tiny_features_dir):
    a, b = (train_model(tiny_features_dir, FAST, quiet=True) for _ in range(2))
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_train_model_seed_changes_weights(tiny_features_dir):
    a = _state(train_model(tiny_features_dir, FAST, quiet=True))
    b = _state(train_model(tiny_features_dir, FAST.replace(seed=1), quiet=True))
    assert a.keys() == b.keys()
    assert all(not np.array_equal(a[k], b[k]) for k in a if k not in ("mean", "std"))


def test_train_model_exception_one_image(tmp_path, tiny_refs):
    tiny_refs(tmp_path / "refs", seeds=[0])
    extract_folder([tmp_path / "refs"], tmp_path / "features", FCFG, quiet=True)
    with pytest.raises(ValueError, match=re.escape("training needs at least 2 usable reference images, got 1")):
        train_model(tmp_path / "features", FAST, quiet=True)


def test_train_model_exception_no_manifest(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / MANIFEST}: no features manifest here")):
        train_model(tmp_path, FAST, quiet=True)


# --- Model save / load -------------------------------------------------------


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(tiny_model_dir, path)
    return path


def test_model_roundtrip(tiny_features_dir, tmp_path, rng):
    model = train_model(tiny_features_dir, FAST, quiet=True)
    model.save(tmp_path / "model")
    loaded = Model.load(tmp_path / "model")
    x = rng.normal(size=(37, model.feature_config.dim)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_uv(x), model.predict_uv(x))
    sa, sb = _state(model), _state(loaded)
    assert sa.keys() == sb.keys()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)  # normalisation included
    assert loaded.feature_config == model.feature_config
    assert loaded.train_config == model.train_config
    assert loaded.refine_config == model.refine_config
    assert loaded.info["history"]["val_mse"] == model.info["history"]["val_mse"]


def test_model_save_same_bytes_every_time(model_copy, tmp_path):
    """Saving one model twice gives byte-identical files: checksums reproduce."""
    model = Model.load(model_copy)
    for name in ("a", "b"):
        model.save(tmp_path / name)
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_model_no_pickle(model_copy):
    import hashlib

    from safetensors.numpy import load_file

    assert sorted(os.listdir(model_copy)) == ["manifest.json", "net-000.npz", "net-000.safetensors"]
    manifest = json.loads((model_copy / "manifest.json").read_text())
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((model_copy / name).read_bytes()).hexdigest() == sha
    with np.load(model_copy / "net-000.npz", allow_pickle=False) as norm:
        assert sorted(norm.files) == ["mean", "std"]
        assert norm["mean"].shape == norm["std"].shape == (manifest["networks"][0]["in_dim"],)
        assert norm["std"].dtype == np.float32 and (norm["std"] > 0).all()
    weights = load_file(model_copy / "net-000.safetensors")
    state = Model.load(model_copy).networks[0].state()
    assert set(weights) == set(state)  # normalisation lives in the .npz
    assert all(np.array_equal(weights[k], state[k]) for k in weights)
    assert manifest["versions"]["torch"] == torch.__version__


def test_model_exception_no_networks(tiny_configs):
    with pytest.raises(ValueError, match="a model needs at least one network"):
        Model([], tiny_configs["features"], tiny_configs["train"])


def test_model_load_exception_missing_dir(tmp_path):
    with pytest.raises(ModelError, match=re.escape(f"{tmp_path / 'nope'}: no such model directory")):
        Model.load(tmp_path / "nope")


def test_model_load_exception_missing_manifest(model_copy):
    (model_copy / "manifest.json").unlink()
    match = f"{model_copy / 'manifest.json'}: missing; {model_copy} is not a deepcolor model directory"
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_copy)


def test_model_load_exception_malformed_manifest(model_copy):
    (model_copy / "manifest.json").write_text('{"format": "deepcolor-model", ')
    with pytest.raises(ModelError, match=re.escape(f"{model_copy / 'manifest.json'}: unreadable model manifest")):
        Model.load(model_copy)


def _edit_manifest(model_dir, **changes):
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))
    return manifest


def test_model_load_exception_wrong_version(model_copy):
    _edit_manifest(model_copy, format_version=1)
    match = f"{model_copy / 'manifest.json'}: model format version 1, this deepcolor reads version 2"
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_copy)


def test_model_load_exception_wrong_format(model_copy):
    _edit_manifest(model_copy, format="deepcolor-features")
    match = f"{model_copy / 'manifest.json'}: not a deepcolor model manifest (format='deepcolor-features')"
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_copy)


@pytest.mark.parametrize("name", ["net-000.safetensors", "net-000.npz"])
def test_model_load_exception_tampered(model_copy, name):
    data = bytearray((model_copy / name).read_bytes())
    data[-1] ^= 0x01  # one bit
    (model_copy / name).write_bytes(bytes(data))
    match = f"{model_copy / name}: checksum mismatch (sha256 differs from {model_copy / 'manifest.json'})"
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_copy)


def test_model_load_exception_missing_weights(model_copy):
    (model_copy / "net-000.safetensors").unlink()
    match = f"{model_copy / 'net-000.safetensors'}: cannot read model file"
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_copy)


def test_model_load_exception_feature_mismatch(model_copy):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    _edit_manifest(model_copy, feature_config={**manifest["feature_config"], "patch_size": 5})
    # 81 = 7x7 patch + 32 DAISY values; 57 with a 5x5 patch
    with pytest.raises(ModelError, match=re.escape(f"{model_copy / 'manifest.json'}: network input") + ".*81.*57"):
        Model.load(model_copy)


def test_model_load_exception_inconsistent_network(model_copy):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    _edit_manifest(model_copy, networks=[{**manifest["networks"][0], "hidden": 9}])
    match = (f"{model_copy / 'net-000.safetensors'}: inconsistent model (ValueError: a network of in_dim, hidden, "
             f"n_hidden_layers = (81, 16, 3), the manifest says (81, 9, 3)); the model is corrupt")
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_copy)


def test_model_load_exception_manifest_without_files(model_copy):
    path = model_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["files"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=re.escape(str(path))):
        Model.load(model_copy)


def test_model_load_exception_manifest_not_an_object(model_copy):
    (model_copy / "manifest.json").write_text("[]")
    with pytest.raises(ModelError, match=re.escape(str(model_copy / "manifest.json"))):
        Model.load(model_copy)


# --- colorize_luma -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return Model.load(tiny_model_dir)


@pytest.mark.parametrize("shape", [(37, 45), (45, 37), (29, 30)])
def test_colorize_luma_shape_dtype(tiny_model, shape):
    out = colorize_luma(tiny_model, np.full(shape, 0.5, np.float32))
    assert out.shape == shape + (3,) and out.dtype == np.uint8


def _luma_inputs(tiny_scene):
    rng = np.random.default_rng(7)
    field = rng.random((41, 53))
    field[0, 0], field[-1, -1], field[3, :7] = 0.0, 1.0, 1.0  # the extremes of the range
    return {
        "grey_u8": rgb_to_gray_u8(tiny_scene(43, 51, 11)).astype(np.float32) / 255,
        "noise": field.astype(np.float32),
        "float64": np.linspace(0, 1, 37 * 31).reshape(37, 31),
    }


@pytest.mark.parametrize("name", ["grey_u8", "noise", "float64"])
def test_colorize_luma_invariant_luminance_kept(tiny_model, tiny_scene, name):
    y = _luma_inputs(tiny_scene)[name]
    out = colorize_luma(tiny_model, y)
    # 8-bit rounding of each channel moves Y by at most 0.5/255 (the weights sum to 1)
    assert np.abs(_luma_u8(out) - y).max() <= 0.5 / 255 + 1e-6
    assert np.abs(out.astype(int)[..., 0] - out[..., 2]).max() > 20  # and it is coloured


def test_colorize_luma_beats_grey(tiny_model, tiny_scene):
    # Fresh scenes (seeds unseen in training) from the training distribution.
    for seed, (h, w) in zip(range(100, 104), [(38, 47), (45, 37), (41, 35), (33, 49)]):
        truth = tiny_scene(h, w, seed)
        grey = rgb_to_gray_u8(truth)
        pred = colorize_luma(tiny_model, grey.astype(np.float32) / 255)
        baseline = np.repeat(grey[..., None], 3, axis=2)  # zero chroma
        # measured: ~30 dB for the model, ~15 dB for grey
        assert _psnr(truth, pred) > _psnr(truth, baseline) + 8, seed


def test_colorize_luma_tiny_and_thin_images(tiny_model):
    """Issue 13: images smaller than the features reach are padded, not refused; luminance kept."""
    for shape in [(3, 40), (1, 1), (5, 5), (300, 5), (2, 3000)]:
        y = np.random.default_rng(0).random(shape, dtype=np.float32)
        rgb = colorize_luma(tiny_model, y)
        assert rgb.shape == shape + (3,)
        np.testing.assert_allclose(rgb_to_yuv(rgb.astype(np.float64) / 255)[..., 0], y, atol=1 / 255)


def test_colorize_luma_exception_not_2d(tiny_model):
    with pytest.raises(ValueError, match=re.escape("y must be a 2-D (H, W) luminance image, got shape (9, 7, 3)")):
        colorize_luma(tiny_model, np.zeros((9, 7, 3), np.float32))


# --- plan_outputs ------------------------------------------------------------


def test_plan_outputs_mirrors_folder(tmp_path):
    src = tmp_path / "in"
    for name in ["a.png", "sub/b.jpg", "sub/deep/c.TIFF", "notes.txt"]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x")
    pairs, problems = plan_outputs(src, tmp_path / "out")
    assert problems == []
    assert pairs == [(src / "a.png", tmp_path / "out" / "a.png"),
                     (src / "sub" / "b.jpg", tmp_path / "out" / "sub" / "b.png"),
                     (src / "sub" / "deep" / "c.TIFF", tmp_path / "out" / "sub" / "deep" / "c.png")]


def test_plan_outputs_file_into_folder(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"x")
    assert plan_outputs(tmp_path / "photo.jpg", tmp_path / "out") == (
        [(tmp_path / "photo.jpg", tmp_path / "out" / "photo.png")], [])


def test_plan_outputs_file_to_file(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"x")
    assert plan_outputs(tmp_path / "photo.jpg", tmp_path / "colour.JPG") == (
        [(tmp_path / "photo.jpg", tmp_path / "colour.JPG")], [])


def test_plan_outputs_collision(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ["a.jpg", "a.png", "b.png"]:
        (src / name).write_bytes(b"x")
    pairs, problems = plan_outputs(src, tmp_path / "out")
    assert pairs == [(src / "a.jpg", tmp_path / "out" / "a.png"), (src / "b.png", tmp_path / "out" / "b.png")]
    assert problems == [f"{src / 'a.png'}: output {tmp_path / 'out' / 'a.png'} would also be written "
                        f"for {src / 'a.jpg'}; skipped"]


def test_plan_outputs_exception_nonexistent(tmp_path):
    with pytest.raises(ImageError, match=re.escape(f"{tmp_path / 'nope'}: no such file or folder")):
        plan_outputs(tmp_path / "nope", tmp_path / "out")


# --- colorize_file -----------------------------------------------------------


@pytest.fixture
def grey_file(tmp_path, tiny_scene):
    return _save(tmp_path / "in" / "g.png", rgb_to_gray_u8(tiny_scene(39, 44, 50)))


def test_colorize_file_unit(tiny_model, grey_file, tmp_path):
    before = _snapshot(grey_file.parent)
    dst = tmp_path / "out" / "sub" / "g.png"
    outcome = colorize_file(tiny_model, grey_file, dst)
    assert (outcome.status, outcome.source, outcome.output) == ("done", str(grey_file), str(dst))
    out = np.asarray(Image.open(dst))
    grey = np.asarray(Image.open(grey_file))
    assert out.shape == grey.shape + (3,)
    assert np.abs(_luma_u8(out) - grey / 255.0).max() <= 0.5 / 255 + 1e-6
    assert _snapshot(grey_file.parent) == before  # the input is never touched
    assert sorted(os.listdir(dst.parent)) == ["g.png"]


def test_colorize_file_skips_existing(tiny_model, grey_file, tmp_path):
    dst = tmp_path / "out.png"
    dst.write_bytes(b"old")
    outcome = colorize_file(tiny_model, grey_file, dst)
    assert outcome.status == "skipped"
    assert outcome.message == f"{dst}: exists, skipped (use --overwrite)"
    assert dst.read_bytes() == b"old"


def test_colorize_file_overwrite(tiny_model, grey_file, tmp_path):
    dst = tmp_path / "out.png"
    dst.write_bytes(b"old")
    outcome = colorize_file(tiny_model, grey_file, dst, overwrite=True)
    assert outcome.status == "done"
    assert np.asarray(Image.open(dst)).shape == (39, 44, 3)


@pytest.mark.parametrize("existing", [False, True])
def test_colorize_file_atomic(tiny_model, grey_file, tmp_path, monkeypatch, existing):
    dst = tmp_path / "out" / "g.png"
    dst.parent.mkdir()
    if existing:
        dst.write_bytes(b"old")
    written = []

    def fail(fd):  # the data is written, the rename has not happened
        written.append(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dio.os, "fsync", fail)
    outcome = colorize_file(tiny_model, grey_file, dst, overwrite=True)
    monkeypatch.undo()
    assert written  # the failure did happen midway through the write
    assert outcome.status == "failed"
    assert outcome.message.startswith(f"{grey_file}: ") and "No space left on device" in outcome.message
    assert os.listdir(dst.parent) == (["g.png"] if existing else [])  # no .part file left
    if existing:
        assert dst.read_bytes() == b"old"  # the old output is intact


def test_colorize_file_bad_input(tiny_model, tmp_path):
    src = tmp_path / "bad.png"
    src.write_text("not an image")
    outcome = colorize_file(tiny_model, src, tmp_path / "out.png")
    assert outcome.status == "failed"
    assert outcome.message == f"{src}: not an image file that Pillow can read"
    assert not (tmp_path / "out.png").exists()


def test_colorize_file_too_small(tiny_model, tmp_path):
    src = _save(tmp_path / "small.png", np.full((2, 30), 128, np.uint8))
    outcome = colorize_file(tiny_model, src, tmp_path / "out.png")
    assert outcome.status == "done", outcome.message
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (2, 30, 3)


def test_colorize_file_colour_input(tiny_model, tmp_path, tiny_scene, caplog):
    truth = tiny_scene(37, 45, 60)
    src = _save(tmp_path / "colour.png", truth)
    with caplog.at_level(logging.WARNING, logger="deepcolor"):
        outcome = colorize_file(tiny_model, src, tmp_path / "out.png")
    assert outcome.status == "done"
    assert [r.getMessage() for r in caplog.records] == [f"{src}: colour input, reduced to its luminance"]
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.abs(_luma_u8(out) - _luma_u8(truth)).max() <= 0.5 / 255 + 1e-5


# --- the semantic feature through the pipeline ---------------------------------


def test_semantic_pipeline_unit(tmp_path, tiny_refs, tiny_configs, tiny_parser_dir, torch_one_thread, rng):
    # patch + semantic from a tiny student: the features carry its K probabilities,
    # the model trains on them, and colorizing keeps the luminance.
    cfg = tiny_configs["features"].replace(features=("patch", "semantic"), semantic_parser=str(tiny_parser_dir),
                                           semantic_radius=2)
    assert cfg.dim == 49 + 3
    tiny_refs(tmp_path / "refs")
    manifest = extract_folder([tmp_path / "refs"], tmp_path / "features", cfg, quiet=True)
    assert manifest["counts"] == {"ok": 6}
    shard = load_shards(tmp_path / "features")[0]
    sem = shard[1][:, 49:]
    np.testing.assert_allclose(sem.sum(-1), 1.0, atol=1e-5)
    model = train_model(tmp_path / "features", tiny_configs["train"], tiny_configs["refine"], quiet=True)
    model.save(tmp_path / "model")
    loaded = Model.load(tmp_path / "model")
    assert loaded.feature_config.semantic_parser == str(tiny_parser_dir)
    y = rng.random((45, 61)).astype(np.float32)
    rgb = colorize_luma(loaded, y)
    assert rgb.shape == (45, 61, 3)
    assert np.abs(rgb_to_gray_u8(rgb).astype(int) - np.rint(y * 255)).max() <= 1


def test_semantic_extraction_key_follows_parser_weights(tmp_path, tiny_parser_dir):
    # A retrained parser (other weights, same path) must not reuse the old shards.
    import shutil

    import torch

    from deepcolor.features import load_parser
    from deepcolor.features.greyparser import StudentParser, _student_module

    path = tmp_path / "parser"
    shutil.copytree(tiny_parser_dir, path)
    cfg = FeatureConfig(features=("patch", "semantic"), semantic_parser=str(path))
    first = cfg.extraction_key()
    torch.manual_seed(1)
    StudentParser(_student_module(3, width=4), ("dark", "bright", "other"), input_size=32).save(path)
    load_parser.cache_clear()
    try:
        assert cfg.extraction_key() != first
    finally:
        load_parser.cache_clear()


# --- semantic dropout -----------------------------------------------------------


def test_feature_block_unit(tiny_parser_dir):
    from deepcolor.train import feature_block

    cfg = FeatureConfig(features=("patch", "daisy", "semantic"), semantic_parser=str(tiny_parser_dir),
                        semantic_groups="parser")
    assert feature_block(cfg, "semantic") == (81, 84)
    assert feature_block(cfg, "patch") == (0, 49)
    assert feature_block(FeatureConfig(features=("patch", "daisy")), "semantic") is None
    assert feature_block(FeatureConfig(features=("patch", "daisy", "semantic")), "semantic") == (81, 93)  # 12 classes


def test_chroma_net_block_dropout_unit(rng):
    from deepcolor.networks import ChromaNet

    torch.manual_seed(0)
    net = ChromaNet(4, hidden=8, block=(1, 3), block_dropout=1 - 1e-9)
    x = torch.from_numpy(rng.random((50, 4)).astype(np.float32))
    x2 = x.clone()
    x2[:, 1:3] += 5.0  # only the dropped block differs
    net.train()
    torch.testing.assert_close(net(x), net(x2))  # training: the block is replaced by its mean
    x3 = x.clone()
    x3[:, 3] += 5.0
    assert not torch.allclose(net(x), net(x3))  # the other columns still count
    net.eval()
    assert not torch.allclose(net(x), net(x2))  # inference: the block is used


def test_chroma_net_block_dropout_invariant_share(rng):
    # About block_dropout of the rows lose the block.
    from deepcolor.networks import ChromaNet

    torch.manual_seed(0)
    net = ChromaNet(3, hidden=8, block=(2, 3), block_dropout=0.3).train()
    x = torch.from_numpy(rng.random((20000, 3)).astype(np.float32))
    x2 = x.clone()
    x2[:, 2] += 5.0
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(1)
    b = net(x2)
    dropped = (a - b).abs().sum(dim=1) < 1e-6
    assert abs(float(dropped.float().mean()) - 0.3) < 0.02


def test_train_model_semantic_dropout_runs(tmp_path, tiny_refs, tiny_configs, tiny_parser_dir, torch_one_thread):
    cfg = tiny_configs["features"].replace(features=("patch", "semantic"), semantic_parser=str(tiny_parser_dir))
    tiny_refs(tmp_path / "refs")
    extract_folder([tmp_path / "refs"], tmp_path / "features", cfg, quiet=True)
    a = train_model(tmp_path / "features", tiny_configs["train"], quiet=True)
    b = train_model(tmp_path / "features", tiny_configs["train"].replace(semantic_dropout=0.5), quiet=True)
    assert a.info["history"]["train_mse"] != b.info["history"]["train_mse"]  # the option reaches training
    assert b.networks[0].in_dim == 49 + 3


# --- image weighting ------------------------------------------------------------


def test_image_weights_unit():
    from deepcolor.train import image_weights

    dull = np.zeros((4, 2), np.float32)  # at the mean chroma: nothing at stake
    vivid = np.array([[0.2, 0.0], [-0.2, 0.0], [0.0, 0.2], [0.0, -0.2]], np.float32)
    w = image_weights([dull, vivid, vivid], "psnr")
    # mean chroma (0, 0); e = (0, 0.04, 0.04), median 0.04 -> per image 1/0.04, 1/0.08, 1/0.08
    expected = np.repeat([2.0, 1.0, 1.0], 4)
    np.testing.assert_allclose(w, expected / expected.mean(), rtol=1e-6)
    assert w.dtype == np.float32 and abs(w.mean() - 1) < 1e-6
    assert image_weights([dull, vivid], "uniform") is None


def test_image_weights_exception():
    from deepcolor.train import image_weights

    with pytest.raises(ValueError, match="image weighting must be 'uniform' or 'psnr', got 'mse'"):
        image_weights([np.zeros((2, 2), np.float32)], "mse")


def test_train_model_image_weighting_changes_training(tiny_features_dir, tiny_configs, torch_one_thread):
    a = train_model(tiny_features_dir, tiny_configs["train"].replace(image_weighting="uniform"), quiet=True)
    b = train_model(tiny_features_dir, tiny_configs["train"].replace(image_weighting="psnr"), quiet=True)
    assert a.info["history"]["train_mse"] != b.info["history"]["train_mse"]
    assert b.train_config.image_weighting == "psnr"


def test_image_weights_invariant_one_chroma():
    # References that all share one chroma (possible with min_chroma_spread = 0): finite equal weights.
    from deepcolor.train import image_weights

    same = np.full((3, 2), 0.1, np.float32)
    w = image_weights([same, same], "psnr")
    np.testing.assert_allclose(w, 1.0)
