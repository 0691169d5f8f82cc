"""Models that survive a crash, and corrupt models refused with one message (issue 13, items 3 and 5).

Replacing a model (`deepcolor train --overwrite`) builds the new one beside the
old and swaps them, so a run killed at any point leaves one whole model. A
model directory whose files are not what they claim is refused by
`deepcolor colorize` with exit status 2 and one line naming the file and the
problem, with ``--jobs 1`` (torch loads it) and ``--jobs 2`` (checked without
torch before the workers start).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from deepcolor.color import rgb_to_gray_u8


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(model, edit, keep_settings_sha=False):
    """Apply `edit(manifest)` to a model's manifest; drop its settings checksum (as an older model has none)."""
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    if not keep_settings_sha:
        manifest.pop("settings_sha256", None)
    path.write_text(json.dumps(manifest, indent=1))


def _grey_input(tmp_path, tiny_scene):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 36, 900))).save(src / "a.png")
    return src


# --- item 3: a model replaced in one step ------------------------------------------------


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


_KILLED_SAVE = textwrap.dedent("""
    import os, sys
    import deepcolor.modelfiles as ens
    from deepcolor.ensemble import Model

    model = Model.load(sys.argv[1])
    for w, b in model.networks[0].layers:  # a different model: other weights
        w *= 1.5
        b *= 1.5
    def killed(*args, **kwargs):
        os._exit(137)  # as a SIGKILL would, between the weights and the manifest
    ens.atomic_write_text = killed
    model.save(sys.argv[2])
""")


def test_model_save_killed_before_manifest_keeps_old_model(tmp_path, tiny_model_dir):
    """Killed after the weights and before the manifest, the old model is left whole and loads."""
    from deepcolor.ensemble import Model

    model_dir = _copy_model(tiny_model_dir, tmp_path / "model")
    before = _files(model_dir)
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(tiny_model_dir), str(model_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr
    assert _files(model_dir) == before  # not one byte of the old model changed
    Model.load(model_dir)
    # the next save removes the killed run's folder and replaces the model whole
    model = Model.load(tiny_model_dir)
    model.train_config = model.train_config.replace(seed=777)
    model.save(model_dir)
    assert Model.load(model_dir).train_config.seed == 777
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_model_save_replaces_whole_model(tmp_path, tiny_model_dir):
    from deepcolor.ensemble import Model

    model_dir = _copy_model(tiny_model_dir, tmp_path / "model")
    (model_dir / ".net-000.npz.ab12.part").write_bytes(b"x")  # a killed atomic write's leftover
    model = Model.load(tiny_model_dir)
    model.save(model_dir)
    assert sorted(os.listdir(model_dir)) == sorted(os.listdir(tiny_model_dir))
    Model.load(model_dir)


def test_model_save_exception_other_files(tmp_path, tiny_model_dir):
    """A folder holding other files than a model's is never replaced (nor emptied)."""
    from deepcolor.ensemble import Model
    from deepcolor.modelfiles import ModelError

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    with pytest.raises(ModelError, match=r"mine: holds files that are not a model's \('thesis.tex'\)"):
        Model.load(tiny_model_dir).save(folder)
    assert (folder / "thesis.tex").read_text() == "keep me"


def test_cli_train_overwrite_exception_other_files(run, tmp_path, tiny_features_dir):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (folder / "notes.txt").write_text("keep me")
    rc, _, err = run("train", tiny_features_dir, "--out", folder, "--overwrite", "--clusters", "1", "-q")
    assert rc == 2 and "holds files that are not a model's ('notes.txt')" in err
    assert (folder / "notes.txt").is_file()


def test_cli_train_nan_shard_exception(run, tmp_path, tiny_features_dir):
    """A feature shard holding NaN: one clear error, exit status 2, no model."""
    feats = tmp_path / "features"
    shutil.copytree(tiny_features_dir, feats)
    shard = sorted((feats / "shards").glob("*.npz"))[0]
    with np.load(shard, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["x"][3, 2] = np.nan
    np.savez(shard, **arrays)
    for clusters in ("1", "2"):
        rc, _, err = run("train", feats, "--out", tmp_path / "model", "--clusters", clusters, "--mu", "2", "-q")
        assert rc == 2, err
        assert "holds NaN or infinite values (1 of" in err and "Traceback" not in err
        assert not (tmp_path / "model").exists()


# --- item 5: corrupt models refused ---------------------------------------------------------


def _colorize_refused(run, tmp_path, tiny_scene, model, expected):
    src = _grey_input(tmp_path, tiny_scene)
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        rc, _, err = run("colorize", src, out, "--model", model, "--jobs", jobs, "-q")
        assert rc == 2, (jobs, err)
        errors = [line for line in err.splitlines() if line.startswith("ERROR: ")]
        assert len(errors) == 1 and expected in errors[0], (jobs, err)
        assert "Traceback" not in err
        assert not (out / "a.png").exists()


def test_colorize_exception_weights_not_safetensors(run, tmp_path, tiny_scene, tiny_model_dir):
    """Weights that match their checksum but are not safetensors."""
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    junk = b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + bytes(64)
    (model / "net-000.safetensors").write_bytes(junk)
    _edit_manifest(model, lambda m: m["files"].update({"net-000.safetensors": _sha(junk)}))
    _colorize_refused(run, tmp_path, tiny_scene, model, "net-000.safetensors: not a valid safetensors file")


def test_colorize_exception_weights_bad_offsets(run, tmp_path, tiny_scene, tiny_model_dir):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    data = (model / "net-000.safetensors").read_bytes()[:-8]  # tensors cut short, checksum updated
    (model / "net-000.safetensors").write_bytes(data)
    _edit_manifest(model, lambda m: m["files"].update({"net-000.safetensors": _sha(data)}))
    _colorize_refused(run, tmp_path, tiny_scene, model, "has a bad dtype, shape or offsets")


@pytest.mark.parametrize("name", ["/dev/zero", "../outside.npz", "/etc/hostname", "sub/net.npz", "manifest.json"])
def test_colorize_exception_file_outside_model(run, tmp_path, tiny_scene, tiny_model_dir, name):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    (tmp_path / "outside.npz").write_bytes((model / "net-000.npz").read_bytes())

    def edit(m):
        sha = m["files"].pop("net-000.npz")
        m["files"][name] = sha
        m["networks"][0]["normalisation"] = name

    _edit_manifest(model, edit)
    _colorize_refused(run, tmp_path, tiny_scene, model, "must be plain file names inside its folder")


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_colorize_exception_file_not_regular(run, tmp_path, tiny_scene, tiny_model_dir, kind):
    """A FIFO is refused without blocking; a symlink is not followed; a folder is no file."""
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    path = model / "net-000.npz"
    data = path.read_bytes()
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
        expected = "net-000.npz: not a regular file"
    elif kind == "symlink":
        (tmp_path / "elsewhere.npz").write_bytes(data)
        os.symlink(tmp_path / "elsewhere.npz", path)
        expected = "net-000.npz: is a symlink"
    else:
        path.mkdir()
        expected = "net-000.npz: not a regular file"
    _colorize_refused(run, tmp_path, tiny_scene, model, expected)


def test_colorize_exception_settings_edited(run, tmp_path, tiny_scene, tiny_model_dir):
    """A model saved now carries a checksum of its settings: an edited setting is refused."""
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    _edit_manifest(model, lambda m: m["refine_config"].update(diameter=21), keep_settings_sha=True)
    _colorize_refused(run, tmp_path, tiny_scene, model, "the settings do not match their checksum")


@pytest.mark.parametrize("section, key, value, expected", [
    ("refine_config", "diameter", 4001, "refine_config diameter=4001 is beyond what a model may hold"),
    ("feature_config", "working_size", 100000, "feature_config working_size=100000 is beyond"),
    ("refine_config", "diameter", -3, "inconsistent model settings"),
    ("feature_config", "patch_size", "7", "inconsistent model settings"),
])
def test_colorize_exception_absurd_settings(run, tmp_path, tiny_scene, tiny_model_dir, section, key, value, expected):
    """Settings without a checksum (a model of an older version) are checked against limits."""
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    _edit_manifest(model, lambda m: m[section].update({key: value}))
    _colorize_refused(run, tmp_path, tiny_scene, model, expected)


def test_colorize_exception_network_too_large(run, tmp_path, tiny_scene, tiny_model_dir):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    _edit_manifest(model, lambda m: m["networks"][0].update(hidden=10**9))
    _colorize_refused(run, tmp_path, tiny_scene, model, "network hidden must be an int in 1..8192")


def test_colorize_exception_parser_missing(run, tmp_path, tiny_scene, tiny_model_dir):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    missing = tmp_path / "no-parser"

    def edit(m):
        m["feature_config"].update(features=["patch", "daisy", "semantic"], semantic_parser=str(missing))

    _edit_manifest(model, edit)
    _colorize_refused(run, tmp_path, tiny_scene, model, f"{missing}: no such parser directory")


def test_colorize_exception_manifest_fifo(run, tmp_path, tiny_scene, tiny_model_dir):
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    (model / "manifest.json").unlink()
    os.mkfifo(model / "manifest.json")
    _colorize_refused(run, tmp_path, tiny_scene, model, "manifest.json: not a regular file")
