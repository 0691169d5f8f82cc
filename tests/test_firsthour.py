"""A new user's first hour (issue 18): the help, the options' descriptions, --saturation, mu, the Makefile, README.

Each test names the stumble of the issue it covers. The CLI runs in-process
(`run` of conftest.py); the Makefile is checked with ``make -n`` (skipped
where ``make`` is missing).
"""

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcolor import cli
from deepcolor.cli.learning import mu_note
from deepcolor.color import combine_luma_chroma, rgb_to_gray_u8, rgb_to_yuv, scale_chroma
from deepcolor.metrics import colourfulness

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread (speed on 2-core CI)."""


def _save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def grey_in(tmp_path, tiny_scene):
    """One grey photo (the luma of a tiny scene) in tmp_path/in, its truth returned."""
    truth = tiny_scene(38, 47, 200)
    _save(tmp_path / "in" / "g.png", rgb_to_gray_u8(truth))
    return truth


def _subparsers(parser):
    """(name, parser) of every command and step, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


# --- help --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["features", "train", "colorize", "evaluate", "report"])
def test_help_every_option_described(command):
    """Every option and argument of the user's commands has a description (train --out, --seed, ...)."""
    sub = dict(_subparsers(cli.build_parser()))[command]
    undescribed = [a.option_strings[0] if a.option_strings else a.dest for a in sub._actions
                   if not a.help or a.help == argparse.SUPPRESS]
    assert undescribed == []


def test_help_config_names_every_table():
    for name, sub in _subparsers(cli.build_parser()):
        config = [a for a in sub._actions if "--config" in a.option_strings]
        if config:
            assert all(f"[{t}]" in config[0].help for t in ("features", "train", "refine", "clusters")), name


def test_help_features_lists_the_registry():
    from deepcolor.features import FEATURES

    help_ = next(a.help for a in dict(_subparsers(cli.build_parser()))["features"]._actions
                 if "--features" in a.option_strings)
    assert list(FEATURES) == ["patch", "daisy", "semantic"]
    assert "from patch, daisy, semantic" in help_


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("flag, expected", [("-v", (True, False)), ("-q", (False, True))])
def test_cli_verbose_quiet_before_or_after_command(run, tmp_path, monkeypatch, where, flag, expected):
    seen = []
    monkeypatch.setattr(cli, "setup_logging", lambda verbose, quiet: seen.append((verbose, quiet)))
    argv = ["evaluate", "--truth", tmp_path / "t", "--pred", tmp_path / "p"]
    rc, _, _ = run(*([flag, *argv] if where == "before" else [*argv, flag]))
    assert rc == 2  # the folders do not exist; the flags were taken all the same
    assert seen == [expected]


def test_cli_exception_unknown_option_names_subcommand(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run("colorize", tmp_path, tmp_path / "out", "--overwirte")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: deepcolor colorize ")
    assert err.rstrip().endswith("deepcolor colorize: error: unrecognized arguments: --overwirte")


@pytest.mark.parametrize("value, expected", [("jpeg", ".jpg"), ("JPG", ".jpg"), ("tiff", ".tif"), ("png", ".png")])
def test_cli_colorize_format_aliases(run, tmp_path, tiny_model_dir, grey_in, value, expected):
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_model_dir, "--format", value, "-q")
    assert rc == 0, err
    assert [p.name for p in (tmp_path / "out").glob("g.*")] == [f"g{expected}"]


def test_cli_colorize_exception_format_unknown(run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run("colorize", tmp_path, tmp_path / "out", "--format", "gif")
    assert "argument --format: invalid choice: 'gif'" in capsys.readouterr().err


def test_cli_colorize_exception_model_is_features_folder(run, tmp_path, tiny_features_dir, grey_in):
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_features_dir)
    assert rc == 2
    assert (f"ERROR: {tiny_features_dir}: this is a features folder (made by 'deepcolor features'), not a model: "
            f"run 'deepcolor train {tiny_features_dir} --out MODEL_DIR' and pass --model MODEL_DIR") in err
    assert not (tmp_path / "out").exists()


# --- --saturation ------------------------------------------------------------


def test_scale_chroma_unit():
    uv = np.array([[[0.1, -0.2], [0.0, 0.3]]], np.float32)  # (1, 2, 2)
    np.testing.assert_array_equal(scale_chroma(uv, 1.5), uv * np.float32(1.5))
    assert scale_chroma(uv, 1.0) is uv  # the paper's output, untouched
    assert not scale_chroma(uv, 0).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_chroma_dtype(dtype):
    out = scale_chroma(np.zeros((3, 5, 2), dtype), 2.0)
    assert out.dtype == np.float32 and out.shape == (3, 5, 2)


def test_scale_chroma_invariant_luminance_and_hue(rng):
    """After combine_luma_chroma, Y is kept at any factor and the hue angle of in-gamut pixels too."""
    y = rng.uniform(0.3, 0.7, (9, 13)).astype(np.float32)
    uv = rng.uniform(-0.05, 0.05, (9, 13, 2)).astype(np.float32)
    for factor in (0.5, 1.5, 2.0, 8.0):
        yuv = rgb_to_yuv(combine_luma_chroma(y, scale_chroma(uv, factor)))
        np.testing.assert_allclose(yuv[..., 0], y, atol=1e-5)
        kept = np.hypot(*np.moveaxis(yuv[..., 1:], -1, 0)) > 1e-3
        np.testing.assert_allclose(np.arctan2(yuv[..., 2], yuv[..., 1])[kept],
                                   np.arctan2(uv[..., 1], uv[..., 0])[kept], atol=1e-3)


@pytest.mark.parametrize("factor", [-0.5, float("nan"), float("inf"), "2"])
def test_scale_chroma_exception(factor):
    with pytest.raises(ValueError, match="saturation factor must be a finite number >= 0, got"):
        scale_chroma(np.zeros((3, 5, 2), np.float32), factor)
    with pytest.raises(ValueError, match=r"uv must have shape \(H, W, 2\), got \(3, 5\)"):
        scale_chroma(np.zeros((3, 5), np.float32), 1.0)


def test_cli_colorize_saturation(run, tmp_path, tiny_model_dir, grey_in):
    """--saturation 2 gives more colourful outputs of the same luminance; 0 gives grey; 1 is the default."""
    outs = {}
    for factor in (None, "1", "2", "0"):
        out = tmp_path / f"out-{factor}"
        rc, _, err = run("colorize", tmp_path / "in", out, "--model", tiny_model_dir, "-q",
                         *(["--saturation", factor] if factor else []))
        assert rc == 0, err
        outs[factor] = np.asarray(Image.open(out / "g.png"))
    np.testing.assert_array_equal(outs[None], outs["1"])
    assert colourfulness(outs["2"]) > 1.5 * colourfulness(outs["1"]) > 0
    assert (outs["0"] == outs["0"][..., :1]).all()  # R = G = B
    for rgb in outs.values():
        assert np.abs(rgb_to_gray_u8(rgb).astype(int) - rgb_to_gray_u8(grey_in)).max() <= 1


@pytest.mark.parametrize("value", ["-1", "nan", "lots"])
def test_cli_colorize_exception_saturation(run, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exc:
        run("colorize", tmp_path, tmp_path / "out", "--saturation", value)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: deepcolor colorize " in err and "argument --saturation: must be a" in err


# --- train: mu against a small reference set ---------------------------------


def test_cli_train_mu_note_one_network(run, tmp_path, tiny_features_dir, config_toml):
    """6 references and mu 6 make one network: the summary says so and names the --mu that would not."""
    rc, _, err = run("train", tiny_features_dir, "--out", tmp_path / "model", "--config", config_toml,
                     "--clusters", "2", "--mu", "6", "-q")
    assert rc == 0, err
    assert "train: 1 networks in 1 layer(s)" in err
    assert ("train: note: one network only: 6 usable references and mu 6 (at least mu references per network) "
            "leave room for one cluster; a smaller mu makes an ensemble (--mu 3 allows 2)") in err


def test_cli_mu_note_unit():
    from deepcolor.clustering.config import ClusterConfig

    note = mu_note(40, ClusterConfig(n_clusters=6, mu=40), 1)
    assert "40 usable references and mu 40" in note and "(--mu 20 allows 2, --mu 6 up to 6 (--clusters))" in note
    assert mu_note(80, ClusterConfig(n_clusters=6, mu=40), 2) == ""
    assert mu_note(3, ClusterConfig(n_clusters=2, mu=2), 1).endswith("(more references are needed for 2)")


# --- evaluate's summary line -------------------------------------------------


def test_cli_evaluate_summary_line(run, tmp_path, tiny_scene):
    """Nested predictions against flat truths: the rule that matched and the trivial baselines are printed."""
    for stem, seed in [("a", 1), ("sub/b", 2)]:
        rgb = tiny_scene(37, 45, seed)
        _save(tmp_path / "truth" / f"{Path(stem).name}.png", rgb)
        _save(tmp_path / "pred" / f"{stem}.png", rgb)
    rc, out, err = run("evaluate", "--truth", tmp_path / "truth", "--pred", tmp_path / "pred")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["pairing"] == {"relative path": 1, "file name": 1}
    line = re.search(r"evaluate: 2 pairs \(1 by relative path, 1 by file name \(the folders' trees differ\)\); "
                     r"PSNR (\S+) dB against ([\d.]+) for the grey input and ([\d.]+) for the truths' mean colour; "
                     r"0 failed", err)
    assert line, err
    assert float(line[2]) == pytest.approx(summary["psnr_grey_mean"], abs=0.01)


def test_cli_evaluate_warns_grey_truth(run, tmp_path, tiny_scene):
    grey = np.repeat(rgb_to_gray_u8(tiny_scene(37, 45, 1))[..., None], 3, axis=2)
    _save(tmp_path / "truth" / "a.png", grey)
    _save(tmp_path / "pred" / "a.png", tiny_scene(37, 45, 1))
    rc, _, err = run("evaluate", "--truth", tmp_path / "truth", "--pred", tmp_path / "pred")
    assert rc == 0
    assert f"WARNING: {tmp_path / 'truth'}: every truth is grey" in err


# --- features: grey references -----------------------------------------------


def test_cli_features_grey_reference_skipped_not_failed(run, tmp_path, tiny_refs, tiny_scene, config_toml):
    refs = tmp_path / "refs"
    tiny_refs(refs, seeds=range(2))
    _save(refs / "grey.png", rgb_to_gray_u8(tiny_scene(40, 33, 7)))  # an 'L' file
    _save(refs / "grey_rgb.png", np.repeat(rgb_to_gray_u8(tiny_scene(40, 33, 8))[..., None], 3, axis=2))
    rc, _, err = run("features", refs, "--out", tmp_path / "features", "--config", config_toml, "-q")
    assert rc == 0, err  # no failure
    assert "features: 2 references sampled (0 reused), 2 grey or near-grey skipped, 0 duplicates, 0 failed" in err
    manifest = json.loads((tmp_path / "features" / "manifest.json").read_text())
    entry = next(e for e in manifest["images"] if e["source"].endswith("grey.png"))
    assert entry["status"] == "near-grey" and entry["chroma_spread"] == 0.0


# --- Makefile and README -----------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_colorize_uses_bundled_model_like_the_command():
    def dry(*variables):
        result = subprocess.run(["make", "-n", "-C", str(ROOT), "colorize", "IN=scans", "OUT=colour", *variables],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = re.sub(r"\\\n\s*", " ", result.stdout).splitlines()  # the recipe's continued lines joined
        return next(line for line in lines if "deepcolor colorize" in line)

    assert "--model" not in dry()
    assert "--model work/m" in dry("MODEL=work/m")
    line = dry("GALLERY=1", "SATURATION=1.25")
    assert "--gallery" in line and "--saturation 1.25" in line


def test_readme_says_where_the_command_is_and_how_to_install():
    readme = (ROOT / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin/deepcolor" in readme
    assert "pip install deepcolor" not in readme.replace("`pip install deepcolor` would install that one", "")
    setup = (ROOT / "setup.cfg").read_text()
    name = re.search(r"^name = (\S+)$", setup, re.M)[1]
    assert name == "deepcolor-cheng2015" and name in readme
    assert "deepcolor colorize work/demo/bundled/grey work/first --gallery" in readme
