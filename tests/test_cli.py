"""Tests for the command line: ``deepcolor {features,train,colorize,evaluate}``.

`deepcolor.cli.main` runs in-process (return code, stdout and stderr checked);
one test runs ``python -m deepcolor`` and the console script in a subprocess.
Settings travel through a TOML file (``--config``), as a user would pass them.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepcolor
from deepcolor import cli
from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.color import rgb_to_gray_u8


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread (speed on 2-core CI)."""


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kwargs)
    return path


def _errors(err):
    return [line for line in err.splitlines() if line.startswith("ERROR: ")]


def _psnr(truth, pred):
    mse = np.mean((truth.astype(np.float64) - pred.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def _stats(root):
    """(inode, mtime) of every output image under root (the colorize record is left out)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "deepcolor-colorize.jsonl"}


def _leftovers(root):
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


@pytest.fixture
def grey_dir(tmp_path, tiny_scene):
    """Two grey photos, one nested, one JPEG; their colour truths are in grey_dir.truth."""
    grey = tmp_path / "grey"
    truths = {"g0": tiny_scene(38, 47, 200), "sub/g1": tiny_scene(45, 37, 201)}
    _save(grey / "g0.png", rgb_to_gray_u8(truths["g0"]))
    _save(grey / "sub" / "g1.jpg", rgb_to_gray_u8(truths["sub/g1"]), quality=98)
    return grey


# --- the whole path ----------------------------------------------------------


def test_cli_features_train_colorize_evaluate(run, tmp_path, tiny_refs, tiny_scene, config_toml):
    refs, feats, model, out = tmp_path / "refs", tmp_path / "features", tmp_path / "model", tmp_path / "out"
    tiny_refs(refs)
    truths = {"t0": tiny_scene(38, 47, 300), "sub/t1": tiny_scene(45, 37, 301)}
    for stem, rgb in truths.items():
        _save(tmp_path / "truth" / f"{stem}.png", rgb)
        _save(tmp_path / "grey" / f"{stem}.png", rgb_to_gray_u8(rgb))

    rc, _, err = run("features", refs, "--out", feats, "--config", config_toml, "-q")
    assert rc == 0, err
    assert ("features: 6 references sampled (0 reused), 0 grey or near-grey skipped, 0 duplicates, "
            f"0 failed -> {feats}") in err
    assert (feats / "manifest.json").is_file() and len(list((feats / "shards").iterdir())) == 6

    rc, _, err = run("train", feats, "--out", model, "--config", config_toml, "-q")
    assert rc == 0, err
    found = re.search(r"train: (\d+) networks in (\d) layer\(s\) of \[([\d, ]+)\] images, reference PSNR by "
                      r"layer \[[\d., ]+\] dB \(.* s\) -> " + re.escape(str(model)), err)
    assert found, err
    n_nets = int(found[1])
    assert n_nets >= 2 and [int(v) for v in found[3].split(",")][0] == 6  # layer 0 holds every reference
    assert sorted(os.listdir(model)) == ["manifest.json"] + [f"net-{i:03d}.{ext}" for i in range(n_nets)
                                                             for ext in ("npz", "safetensors")]

    rc, _, err = run("colorize", tmp_path / "grey", out, "--model", model, "-q")
    assert rc == 0, err
    assert "colorize: 2 colorized, 0 skipped (existing), 0 failed in" in err
    for stem, rgb in truths.items():
        assert np.asarray(Image.open(out / f"{stem}.png")).shape == rgb.shape
    records = [json.loads(line) for line in (out / "deepcolor-colorize.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in records) == sorted(str(tmp_path / "grey" / f"{s}.png") for s in truths)
    assert all(r["status"] == "done" and 0 <= r["cluster"]["cluster"] < n_nets for r in records)

    rc, stdout, err = run("evaluate", "--truth", tmp_path / "truth", "--pred", out, "--out", tmp_path / "eval")
    assert rc == 0, err
    summary = json.loads(stdout)
    assert summary["count"] == 2 and summary["n_failures"] == 0
    grey = {stem: np.repeat(rgb_to_gray_u8(rgb)[..., None], 3, axis=2) for stem, rgb in truths.items()}
    grey_psnr = np.mean([_psnr(truths[stem], grey[stem]) for stem in truths])
    assert summary["psnr_mean"] > grey_psnr + 8  # measured: ~31 dB against ~15 dB for grey
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["count"] == 2
    assert (tmp_path / "eval" / "metrics.csv").read_text().count("\n") == 3


# --- features ----------------------------------------------------------------


def test_cli_features_bad_file(run, tmp_path, tiny_refs, config_toml):
    good = tiny_refs(tmp_path / "refs", seeds=[0, 1])
    broken = tmp_path / "refs" / "broken.png"
    data = good[0].read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # a truncated PNG
    rc, _, err = run("features", tmp_path / "refs", "--out", tmp_path / "features", "--config", config_toml)
    assert rc == 1
    errors = _errors(err)
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {broken}: corrupt or truncated image ("), errors
    assert "features: 2 references sampled (0 reused), 0 grey or near-grey skipped, 0 duplicates, 1 failed" in err


def test_cli_features_options_override_config(run, tmp_path, tiny_refs, config_toml):
    tiny_refs(tmp_path / "refs", seeds=[0, 1])
    rc, _, err = run("features", tmp_path / "refs", "--out", tmp_path / "features", "--config", config_toml,
                     "--features", "patch", "--working-size", "40", "--pixels-per-image", "50", "--seed", "3",
                     "--daisy-backend", "opencv")
    assert rc == 0, err
    manifest = json.loads((tmp_path / "features" / "manifest.json").read_text())
    cfg = manifest["feature_config"]
    assert (cfg["features"], cfg["working_size"], cfg["pixels_per_image"], cfg["seed"], cfg["daisy_backend"]) == (
        ["patch"], 40, 50, 3, "opencv")
    assert cfg["daisy_radius"] == 3  # from the TOML file
    assert manifest["feature_dim"] == 49


def test_cli_features_rerun_reuses(run, tmp_path, tiny_refs, config_toml):
    tiny_refs(tmp_path / "refs", seeds=[0, 1, 2])
    argv = ("features", tmp_path / "refs", "--out", tmp_path / "features", "--config", config_toml, "-q")
    assert run(*argv)[0] == 0
    rc, _, err = run(*argv)
    assert rc == 0
    assert "features: 3 references sampled (3 reused)" in err


@pytest.mark.parametrize("option, value, match", [
    ("--working-size", "8", "working_size must be at least 16, got 8"),
    ("--pixels-per-image", "0", "pixels_per_image must be a positive int, got 0"),
    ("--features", "patch,colour", "unknown feature(s) ['colour']"),
])
def test_cli_features_exception_bad_option(run, tmp_path, tiny_refs, option, value, match):
    tiny_refs(tmp_path / "refs", seeds=[0])
    rc, _, err = run("features", tmp_path / "refs", "--out", tmp_path / "features", option, value)
    assert rc == 2
    errors = _errors(err)
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {match}"), errors
    assert not (tmp_path / "features").exists()


def test_cli_features_exception_bad_config(run, tmp_path, tiny_refs):
    tiny_refs(tmp_path / "refs", seeds=[0])
    toml = tmp_path / "bad.toml"
    toml.write_text("[features]\npatch_size = 4\n")
    rc, _, err = run("features", tmp_path / "refs", "--out", tmp_path / "features", "--config", toml)
    assert rc == 2
    assert _errors(err) == [f"ERROR: {toml}: patch_size must be a positive odd int, got 4"]


def test_cli_features_exception_missing_config(run, tmp_path, tiny_refs):
    tiny_refs(tmp_path / "refs", seeds=[0])
    rc, _, err = run("features", tmp_path / "refs", "--out", tmp_path / "features",
                     "--config", tmp_path / "missing.toml")
    assert rc == 2
    assert str(tmp_path / "missing.toml") in err


def test_cli_features_exception_empty_folder(run, tmp_path):
    (tmp_path / "refs").mkdir()
    rc, _, err = run("features", tmp_path / "refs", "--out", tmp_path / "features")
    assert rc == 2
    assert _errors(err) == [f"ERROR: no reference images found in {tmp_path / 'refs'}"]


def test_cli_features_exception_nonexistent(run, tmp_path):
    rc, _, err = run("features", tmp_path / "nope", "--out", tmp_path / "features")
    assert rc == 2
    assert _errors(err) == [f"ERROR: {tmp_path / 'nope'}: no such file or folder"]


@pytest.mark.parametrize("command", ["features", "colorize", "evaluate"])
def test_cli_exception_jobs_zero(run, tmp_path, capsys, command):
    """--jobs 0 is refused with the usage of the subcommand it was given to (issue 18)."""
    argv = {"features": ["features", tmp_path, "--out", tmp_path / "f"], "colorize": ["colorize", tmp_path, tmp_path],
            "evaluate": ["evaluate", "--truth", tmp_path, "--pred", tmp_path]}[command]
    with pytest.raises(SystemExit) as exc:
        run(*argv, "--jobs", "0")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: deepcolor {command} " in err
    assert f"deepcolor {command}: error: argument --jobs: must not be 0" in err


def test_cli_no_command_prints_help(run):
    """`deepcolor` alone prints the help, every command listed, and succeeds (issue 18)."""
    rc, out, err = run()
    assert rc == 0 and err == ""
    assert out.startswith("usage: deepcolor ")
    for command in ("features", "train", "colorize", "evaluate", "report", "parser"):
        assert f"    {command} " in out
    rc, out, _ = run("parser")
    assert rc == 0 and out.startswith("usage: deepcolor parser ") and "STEP" in out



def test_cli_declares_only_the_command_asked_for():
    """`deepcolor colorize` declares colorize alone; no command or a mistyped one, every command."""
    def names(parser):
        return set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)

    assert names(cli.build_parser("colorize")) == {"colorize"}
    assert names(cli.build_parser("parser")) == {"parser"}
    every = set(cli.COMMANDS) | {"parser"}
    assert names(cli.build_parser(None)) == every
    assert names(cli.build_parser("colorise")) == every
    assert cli.command_of(["-v", "colorize", "a", "b"]) == "colorize"
    assert cli.command_of(["--version"]) is None


def test_cli_colorize_imports_neither_training_nor_scoring():
    """The start-up of `deepcolor colorize` imports no module of the other commands (issue 19)."""
    code = ("import sys; from deepcolor import cli; cli.build_parser('colorize'); "
            "print(sorted(m for m in sys.modules if m in ('deepcolor.cli.learning', 'deepcolor.cli.scoring', "
            "'deepcolor.pick', 'deepcolor.distill', 'deepcolor.report', 'scipy', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- train -------------------------------------------------------------------


def test_cli_train_overwrite(run, tmp_path, tiny_features_dir, config_toml):
    model = tmp_path / "model"
    argv = ("train", tiny_features_dir, "--out", model, "--config", config_toml, "-q", "--epochs", "3")
    assert run(*argv)[0] == 0
    manifest = (model / "manifest.json").read_bytes()
    assert json.loads(manifest)["train_config"]["max_epochs"] == 3  # the option beats the TOML's 20

    rc, _, err = run(*argv, "--seed", "5")
    assert rc == 2
    assert _errors(err) == [f"ERROR: {model}: a model exists here; use --overwrite to replace it"]
    assert (model / "manifest.json").read_bytes() == manifest

    rc, _, err = run(*argv, "--seed", "5", "--hidden", "6", "--overwrite", "--clusters", "3", "--mu", "2",
                     "--epsilon=-30", "--max-layers", "1", "--descriptor", "semantic", "--jobs", "2")
    assert rc == 0, err
    new = json.loads((model / "manifest.json").read_text())
    assert (new["train_config"]["seed"], new["train_config"]["hidden"]) == (5, 6)
    assert all(net["hidden"] == 6 for net in new["networks"])
    assert new["cluster_config"] == {**json.loads(manifest)["cluster_config"], "n_clusters": 3, "mu": 2,
                                     "epsilon": -30.0, "max_layers": 1, "descriptor": "semantic", "seed": 5}
    # at most N0 = 3 clusters of at least mu = 2 of the 6 references, one layer
    assert 2 <= len(new["clusters"]) == len(new["networks"]) <= 3 and {c["layer"] for c in new["clusters"]} == {0}
    assert all(c["n_members"] >= 2 for c in new["clusters"])


def test_cli_train_clusters_1_is_one_network(run, tmp_path, tiny_features_dir, config_toml):
    model = tmp_path / "model"
    rc, _, err = run("train", tiny_features_dir, "--out", model, "--config", config_toml, "-q", "--clusters", "1")
    assert rc == 0, err
    assert re.search(r"train: best held-out MSE \d\.\d{6} at epoch \d+ of \d+ \(.* s\) -> "
                     + re.escape(str(model)), err)
    assert sorted(os.listdir(model)) == ["manifest.json", "net-000.npz", "net-000.safetensors"]
    assert "clusters" not in json.loads((model / "manifest.json").read_text())


def test_cli_train_exception_no_features(run, tmp_path):
    rc, _, err = run("train", tmp_path, "--out", tmp_path / "model")
    assert rc == 2
    assert _errors(err) == [f"ERROR: {tmp_path / 'manifest.json'}: no features manifest here; "
                            "run 'deepcolor features' first"]
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "max_epochs must be a positive int, got 0"),
    ("--clusters", "0", "n_clusters must be a positive int, got 0"),
    ("--mu", "1", "mu must be at least 2 (a network needs a training and a held-out image), got 1"),
    ("--epsilon", "nan", "epsilon must be a finite number of dB (E = -PSNR, so e.g. -26), got nan"),
    ("--max-layers", "0", "max_layers must be a positive int, got 0"),
])
def test_cli_train_exception_bad_option(run, tmp_path, tiny_features_dir, option, value, message):
    rc, _, err = run("train", tiny_features_dir, "--out", tmp_path / "model", option, value)
    assert rc == 2
    assert _errors(err) == [f"ERROR: {message}"]
    assert not (tmp_path / "model").exists()


# --- colorize ----------------------------------------------------------------


def test_cli_colorize_bad_files(run, tmp_path, tiny_model_dir, tiny_scene):
    src, out = tmp_path / "in", tmp_path / "out"
    good = ["g0.png", "sub/g1.jpg", "folder.png/inner.png"]
    for i, name in enumerate(good):
        _save(src / name, rgb_to_gray_u8(tiny_scene(37 + i, 45 - i, 400 + i)))
    good.append("sub/small.png")  # smaller than the features reach: padded, colorized (issue 13)
    png = (src / "g0.png").read_bytes()
    bad = {
        "empty.png": "empty file (0 bytes)",
        "trunc.png": "corrupt or truncated image",
        "notes.jpg": "not an image file that Pillow can read",
    }
    (src / "empty.png").write_bytes(b"")
    (src / "trunc.png").write_bytes(png[: len(png) // 2])
    (src / "notes.jpg").write_text("shopping list\n")
    _save(src / "sub" / "small.png", np.full((2, 30), 90, np.uint8))

    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 1
    errors = _errors(err)
    assert len(errors) == len(bad)
    for name, problem in bad.items():
        mine = [e for e in errors if str(src / name) in e]
        assert len(mine) == 1, name
        assert mine[0].startswith(f"ERROR: {src / name}: {problem}"), mine[0]
    assert "colorize: 4 colorized, 0 skipped (existing), 3 failed in" in err
    for name in good:
        assert np.asarray(Image.open((out / name).with_suffix(".png"))).ndim == 3
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [Path(n).with_suffix(".png").as_posix() for n in good] + ["deepcolor-colorize.jsonl"])
    records = [json.loads(line) for line in (out / "deepcolor-colorize.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in records) == ["done"] * len(good) + ["failed"] * len(bad)


IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.parametrize("how", [
    pytest.param("chmod", marks=pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 file anyway")),
    "simulated",  # Pillow's open raises PermissionError, as for a chmod 000 file: runs as root too
])
def test_cli_colorize_unreadable_file(run, tmp_path, tiny_model_dir, tiny_scene, monkeypatch, how):
    import PIL.Image

    src = tmp_path / "in"
    _save(src / "ok.png", rgb_to_gray_u8(tiny_scene(37, 45, 410)))
    locked = _save(src / "locked.png", rgb_to_gray_u8(tiny_scene(37, 45, 411)))
    if how == "chmod":
        locked.chmod(0)
    else:
        real_open = PIL.Image.open

        def guarded_open(fp, *args, **kwargs):
            if Path(fp) == locked:
                raise PermissionError(13, "Permission denied", str(fp))
            return real_open(fp, *args, **kwargs)

        monkeypatch.setattr(PIL.Image, "open", guarded_open)
    try:
        rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "-q")
    finally:
        locked.chmod(0o644)
    assert rc == 1
    assert _errors(err) == [f"ERROR: {locked}: permission denied"]
    assert "colorize: 1 colorized, 0 skipped (existing), 1 failed" in err
    assert (tmp_path / "out" / "ok.png").is_file() and not (tmp_path / "out" / "locked.png").exists()


def test_cli_colorize_collision(run, tmp_path, tiny_model_dir, tiny_scene):
    src = tmp_path / "in"
    _save(src / "a.jpg", rgb_to_gray_u8(tiny_scene(37, 45, 420)), quality=95)
    _save(src / "a.png", rgb_to_gray_u8(tiny_scene(37, 45, 421)))
    rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "-q")
    assert rc == 1
    assert _errors(err) == [f"ERROR: {src / 'a.png'}: output {tmp_path / 'out' / 'a.png'} would also be "
                            f"written for {src / 'a.jpg'}; skipped"]
    assert "colorize: 1 colorized, 0 skipped (existing), 1 failed" in err


def test_cli_colorize_twice_skips_then_overwrites(run, tmp_path, tiny_model_dir, grey_dir):
    out = tmp_path / "out"
    argv = ("colorize", grey_dir, out, "--model", tiny_model_dir)
    rc, _, err = run(*argv)
    assert rc == 0 and "colorize: 2 colorized, 0 skipped (existing), 0 failed" in err
    first = _stats(out)
    assert len(first) == 2

    rc, _, err = run(*argv)
    assert rc == 0
    assert "colorize: 0 colorized, 2 skipped (existing), 0 failed" in err
    assert f"INFO: {out / 'g0.png'}: exists, skipped (use --overwrite)" in err.splitlines()
    assert _stats(out) == first  # not rewritten

    rc, _, err = run(*argv, "--overwrite")
    assert rc == 0 and "colorize: 2 colorized, 0 skipped (existing), 0 failed" in err
    second = _stats(out)
    assert second.keys() == first.keys()
    assert all(second[p][0] != first[p][0] for p in first)  # replaced by new files (atomic rename)


def test_cli_colorize_jobs_same_as_serial(run, tmp_path, tiny_model_dir, grey_dir):
    assert run("colorize", grey_dir, tmp_path / "one", "--model", tiny_model_dir, "-q")[0] == 0
    rc, _, err = run("colorize", grey_dir, tmp_path / "two", "--model", tiny_model_dir, "-q", "--jobs", "2")
    assert rc == 0, err
    assert "colorize: 2 colorized" in err
    for name in ["g0.png", "sub/g1.png"]:
        one = (tmp_path / "one" / name).read_bytes()
        two = (tmp_path / "two" / name).read_bytes()
        # One torch thread in each worker and here: the same sums in the same order.
        assert one == two, name


def test_cli_colorize_single_file(run, tmp_path, tiny_model_dir, grey_dir):
    rc, _, err = run("colorize", grey_dir / "g0.png", tmp_path / "colour.jpg", "--model", tiny_model_dir, "-q")
    assert rc == 0, err
    assert np.asarray(Image.open(tmp_path / "colour.jpg")).shape == (38, 47, 3)
    rc, _, err = run("colorize", grey_dir / "sub" / "g1.jpg", tmp_path / "outdir", "--model", tiny_model_dir, "-q")
    assert rc == 0, err
    assert np.asarray(Image.open(tmp_path / "outdir" / "g1.png")).shape == (45, 37, 3)


def test_cli_colorize_colour_input_notice(run, tmp_path, tiny_model_dir, tiny_scene):
    src = _save(tmp_path / "in" / "colour.png", tiny_scene(37, 45, 430))
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_model_dir, "-q")
    assert rc == 0
    assert f"WARNING: {src}: colour input, reduced to its luminance" in err.splitlines()


def test_cli_colorize_inputs_untouched(run, tmp_path, tiny_model_dir, grey_dir):
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in grey_dir.rglob("*") if p.is_file()}
    assert run("colorize", grey_dir, tmp_path / "out", "--model", tiny_model_dir, "-q", "--overwrite")[0] == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in grey_dir.rglob("*") if p.is_file()} == before
    assert not _leftovers(tmp_path)


def test_cli_colorize_never_overwrites_input(run, tmp_path, tiny_model_dir, grey_dir):
    original = (grey_dir / "g0.png").read_bytes()
    run("colorize", grey_dir, grey_dir, "--model", tiny_model_dir, "-q", "--overwrite")
    assert (grey_dir / "g0.png").read_bytes() == original


def test_cli_colorize_output_inside_input(run, tmp_path, tiny_model_dir, grey_dir):
    argv = ("colorize", grey_dir, grey_dir / "colour", "--model", tiny_model_dir, "-q")
    assert run(*argv)[0] == 0
    run(*argv)
    assert not (grey_dir / "colour" / "colour").exists()


def test_cli_colorize_empty_folder(run, tmp_path, tiny_model_dir):
    (tmp_path / "in").mkdir()
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_model_dir)
    assert rc == 0
    assert f"WARNING: {tmp_path / 'in'}: no image files found" in err.splitlines()
    assert "colorize: 0 colorized, 0 skipped (existing), 0 failed" in err


def test_cli_colorize_exception_nonexistent_input(run, tmp_path, tiny_model_dir):
    rc, _, err = run("colorize", tmp_path / "nope", tmp_path / "out", "--model", tiny_model_dir)
    assert rc == 2
    assert _errors(err) == [f"ERROR: {tmp_path / 'nope'}: no such file or folder"]
    assert not (tmp_path / "out").exists()


def test_cli_colorize_exception_missing_model(run, tmp_path, grey_dir):
    rc, _, err = run("colorize", grey_dir, tmp_path / "out", "--model", tmp_path / "nomodel")
    assert rc == 2
    assert _errors(err) == [f"ERROR: {tmp_path / 'nomodel'}: no such model directory"]


def test_cli_colorize_exception_corrupt_model(run, tmp_path, tiny_model_dir, grey_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "net-000.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    rc, _, err = run("colorize", grey_dir, tmp_path / "out", "--model", model)
    assert rc == 2
    assert _errors(err) == [f"ERROR: {weights}: checksum mismatch (sha256 differs from "
                            f"{model / 'manifest.json'}); the model is corrupt"]
    assert not (tmp_path / "out").exists()


def test_cli_colorize_bundled_default_model(run, tmp_path):
    """Without --model the bundled ensemble colorizes, and beats the grey input on a sample photo."""
    import skimage.data

    truth = skimage.data.coffee()  # a colour photo shipped with scikit-image, not a reference of the model
    grey = _save(tmp_path / "in" / "coffee.png", rgb_to_gray_u8(truth))
    manifest = json.loads((DEFAULT_MODEL / "manifest.json").read_text())
    assert len(manifest["clusters"]) > 1  # the ensemble, not a single network
    assert sum(p.stat().st_size for p in DEFAULT_MODEL.parent.rglob("*") if p.is_file()) <= 10 * 2**20
    rc, _, err = run("colorize", grey, tmp_path / "out", "-q")
    assert rc == 0, err
    out = np.asarray(Image.open(tmp_path / "out" / "coffee.png"))
    assert out.shape == truth.shape
    assert np.abs(rgb_to_gray_u8(out).astype(int) - rgb_to_gray_u8(truth)).max() <= 1  # luminance kept
    assert _psnr(truth, out) > _psnr(truth, np.repeat(rgb_to_gray_u8(truth)[..., None], 3, axis=2))


def test_cli_colorize_exception_no_default_model(run, tmp_path, grey_dir, monkeypatch):
    monkeypatch.setattr(cli.colorizing, "DEFAULT_MODEL", tmp_path / "no-bundled-model")
    rc, _, err = run("colorize", grey_dir, tmp_path / "out")
    assert rc == 2
    assert _errors(err) == ["ERROR: no --model given and no bundled default model is installed; "
                            "train one with 'deepcolor features' and 'deepcolor train'"]


# --- evaluate ----------------------------------------------------------------


@pytest.fixture
def eval_dirs(tmp_path, tiny_scene):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    for stem, seed in [("a", 500), ("sub/b", 501)]:
        rgb = tiny_scene(37, 45, seed)
        _save(truth / f"{stem}.png", rgb)
        _save(pred / f"{stem}.png", np.repeat(rgb_to_gray_u8(rgb)[..., None], 3, axis=2))
    return truth, pred


def test_cli_evaluate_ok(run, eval_dirs):
    truth, pred = eval_dirs
    rc, out, err = run("evaluate", "--truth", truth, "--pred", pred)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["count"] == 2 and summary["n_failures"] == 0
    assert 10 < summary["psnr_mean"] < 20  # grey against colour


def test_cli_evaluate_missing_prediction(run, eval_dirs):
    truth, pred = eval_dirs
    (pred / "sub" / "b.png").unlink()
    rc, out, err = run("evaluate", "--truth", truth, "--pred", pred)
    assert rc == 1
    assert _errors(err) == [f"ERROR: {truth / 'sub' / 'b.png'}: no prediction with stem 'sub/b' or file name 'b' "
                            f"in {pred}"]
    assert json.loads(out)["count"] == 1


def test_cli_evaluate_exception_nonexistent(run, eval_dirs, tmp_path):
    _, pred = eval_dirs
    rc, out, err = run("evaluate", "--truth", tmp_path / "nope", "--pred", pred)
    assert rc == 2
    assert out == ""
    assert _errors(err) == [f"ERROR: truth folder must be an existing folder, got {str(tmp_path / 'nope')!r} "
                            "(does not exist)"]


# --- entry points ------------------------------------------------------------


def test_cli_entry_points_subprocess():
    help_ = subprocess.run([sys.executable, "-m", "deepcolor", "--help"], capture_output=True, text=True,
                           timeout=120)
    assert help_.returncode == 0, help_.stderr
    for command in ("features", "train", "colorize", "evaluate"):
        assert command in help_.stdout
    script = Path(sys.executable).with_name("deepcolor")  # the venv's console script
    if not script.exists():
        script = Path(shutil.which("deepcolor") or "deepcolor (console script not installed)")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"deepcolor {deepcolor.__version__}"


# --- parser ------------------------------------------------------------------


def _fake_data(root, tiny_scene):
    """A data folder laid out as ../shared/data, a few tiny photos and labels in each set `parser train` reads."""
    from PIL import Image

    def photo(path, seed, h=24, w=30):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(tiny_scene(h, w, seed)).save(path)

    def labels(path, h=24, w=30):
        path.parent.mkdir(parents=True, exist_ok=True)
        lab = np.zeros((h, w), np.uint8)
        lab[h // 2:] = 1
        Image.fromarray(lab).save(path)

    for i in range(6):
        photo(root / "msrc_v2" / "images" / f"{i}_s.jpg", i)
        labels(root / "msrc_v2" / "labels" / f"{i}_s.png")
        photo(root / "stanford_background" / "images" / f"{i:07d}.jpg", 10 + i)
        labels(root / "stanford_background" / "labels" / f"{i:07d}.png")
        for split in ("train", "val"):
            photo(root / "camvid" / split / "images" / f"f{i}.jpg", 20 + i)
            labels(root / "camvid" / split / "labels" / f"f{i}.png")
    (root / "stanford_background" / "train.txt").write_text("".join(f"{i:07d}\n" for i in range(6)))
    (root / "stanford_background" / "msrc_overlap.txt").write_text("0000005.jpg 5_s.jpg\n")
    for folder in ("bsds500/train", "bsds500/val", "imagenet_sample/train", "intel_scenes/train/sea"):
        photo(root / folder / "a.jpg", 30)
    return root


def test_cli_parser_train_exception_missing_teacher(run, tmp_path):
    teacher = tmp_path / "models" / "deeplabv3_mobilenetv2_ade20k.tflite"
    rc, _, err = run("parser", "train", "--teacher", teacher, "--data", tmp_path, "--out", tmp_path / "p", "-q")
    assert rc == 2 and _errors(err) == [f"ERROR: {teacher}: no such ADE20K parser file "
                                        f"(deeplabv3_mobilenetv2_ade20k.tflite)"]
    assert not (tmp_path / "p").exists()


def test_cli_parser_train_exception_missing_data(run, tmp_path):
    (tmp_path / "t.tflite").write_bytes(b"x")
    rc, _, err = run("parser", "train", "--teacher", tmp_path / "t.tflite", "--data", tmp_path / "nope",
                     "--out", tmp_path / "p", "-q")
    assert rc == 2 and _errors(err) == [f"ERROR: {tmp_path / 'nope'}: no such data folder"]


@pytest.mark.parametrize("option, value, match", [
    ("--epochs", "0", "epochs must be a positive int, got 0"),
    ("--input-size", "256", "input_size must be 16 n + 1 and >= 33 (257, 321...), got 256"),
    ("--threads", "0", "threads must be a positive int, got 0")])
def test_cli_parser_train_exception_bad_option(run, tmp_path, option, value, match):
    rc, _, err = run("parser", "train", "--teacher", tmp_path / "t.tflite", "--data", tmp_path,
                     "--out", tmp_path / "p", option, value, "-q")
    assert rc == 2 and _errors(err) == [f"ERROR: {match}"]
    assert not (tmp_path / "p").exists()


def test_cli_parser_train_exception_exists(run, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "manifest.json").write_text("{}")
    rc, _, err = run("parser", "train", "--teacher", tmp_path / "t.tflite", "--data", tmp_path,
                     "--out", tmp_path / "p", "-q")
    assert rc == 2 and "a parser exists here; use --overwrite to replace it" in err


def test_cli_colorize_exception_semantic_parser_gone(run, tmp_path, tiny_refs, tiny_parser_dir, grey_dir,
                                                     tiny_configs):
    # A model whose feature settings name a parser that is no longer there: one clear fatal error.
    from deepcolor.extract import extract_folder
    from deepcolor.features import load_parser
    from deepcolor.train import train_model

    parser = tmp_path / "parser"
    shutil.copytree(tiny_parser_dir, parser)
    cfg = tiny_configs["features"].replace(features=("patch", "semantic"), semantic_parser=str(parser))
    tiny_refs(tmp_path / "refs", seeds=range(3))
    extract_folder([tmp_path / "refs"], tmp_path / "features", cfg, quiet=True)
    train_model(tmp_path / "features", tiny_configs["train"], quiet=True).save(tmp_path / "model")
    shutil.rmtree(parser)
    load_parser.cache_clear()
    rc, _, err = run("colorize", grey_dir, tmp_path / "out", "--model", tmp_path / "model")
    assert rc == 2
    assert _errors(err) == [f"ERROR: {parser}: no such parser directory"]
    assert not (tmp_path / "out").exists()


TEACHER = Path(__file__).resolve().parents[2] / "shared" / "data" / "models" / "deeplabv3_mobilenetv2_ade20k.tflite"


@pytest.mark.skipif(not TEACHER.is_file() or importlib.util.find_spec("tflite") is None,
                    reason="needs the ADE20K .tflite of the data folder and the tflite package")
def test_cli_parser_train_unit(run, tmp_path, tiny_scene, torch_one_thread):
    # The whole command on a tiny data folder with the real teacher: a parser directory that loads and parses.
    from deepcolor.features.greyparser import GreyParser
    from deepcolor.features.labelsets import COLOUR_CLASSES

    data = _fake_data(tmp_path / "data", tiny_scene)
    out = tmp_path / "parser"
    rc, _, err = run("parser", "train", "--teacher", TEACHER, "--data", data, "--out", out, "--epochs", "1",
                     "--input-size", "33", "-q")
    assert rc == 0, err
    assert re.search(r"parser: validation pixel accuracy [\d.]+ \(step \d+ of 2, 18 photos", err)
    parser = GreyParser.load(out)
    assert parser.classes_ == COLOUR_CLASSES and parser.input_size == 33
    assert parser.info["n_train"] == 18 and parser.info["teacher"] == TEACHER.name
    prob = parser.predict_proba(np.full((20, 30), 0.5, np.float32))
    assert prob.shape == (20, 30, len(COLOUR_CLASSES))
    np.testing.assert_allclose(prob.sum(-1), 1, atol=1e-5)
