"""The chrominance network in numpy (`deepcolor.npnet`): torch's results without torch (issue 19).

Golden values are torch's own forward pass (`deepcolor.networks.predict`) on the same weights: the
numpy network must equal it within float32 rounding. Loading a model and colorizing must not
import torch, checked in a fresh interpreter.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.ensemble import Model
from deepcolor.modelfiles import MANIFEST, ModelError, _sha
from deepcolor.networks import ChromaNet, predict
from deepcolor.npnet import NumpyChromaNet


def _torch_net(in_dim=13, hidden=16, n_hidden_layers=3, seed=0):
    """A ChromaNet with random weights and a random input normalisation, in eval mode."""
    torch.manual_seed(seed)
    net = ChromaNet(in_dim, hidden, n_hidden_layers, dropout=0.5)  # dropout: training only
    with torch.no_grad():
        net.mean.copy_(torch.randn(in_dim))
        net.std.copy_(torch.rand(in_dim) + 0.1)
    return net.eval()


# --- NumpyChromaNet.predict ----------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 4096])
@pytest.mark.parametrize("n_hidden_layers", [1, 3])
def test_predict_unit(rng, tol, batch_size, n_hidden_layers):
    # golden values: torch's forward pass of the same network
    net = _torch_net(n_hidden_layers=n_hidden_layers)
    x = rng.normal(size=(101, 13)).astype(np.float32)
    got = net.to_numpy().predict(x, batch_size=batch_size)
    np.testing.assert_allclose(got, predict(net, x), **tol(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_shape_dtype(rng, dtype):
    net = _torch_net().to_numpy()
    for n in (0, 1, 29):
        uv = net.predict(rng.normal(size=(n, 13)).astype(dtype))
        assert uv.shape == (n, 2) and uv.dtype == np.float32


def test_predict_exception(rng):
    net = _torch_net().to_numpy()
    with pytest.raises(ValueError, match=re.escape("features must have shape (N, 13), got (5, 12)")):
        net.predict(np.zeros((5, 12), np.float32))
    with pytest.raises(ValueError, match=re.escape("features must have shape (N, 13), got (13,)")):
        net.predict(np.zeros(13, np.float32))


def test_predict_invariant_threads(rng, tol):
    # one BLAS thread (the default) or the library's own setting: the same numbers up to rounding
    net = _torch_net().to_numpy()
    x = rng.normal(size=(5000, 13)).astype(np.float32)
    np.testing.assert_allclose(net.predict(x, threads=None), net.predict(x), **tol(np.float32))
    np.testing.assert_allclose(net.predict(x, threads=2), net.predict(x), **tol(np.float32))


def test_predict_invariant_batches(rng, tol):
    # batching only splits the rows: every batch size gives the same numbers, up to float32
    # rounding (BLAS sums a product of one row and of many in different orders)
    net = _torch_net().to_numpy()
    x = rng.normal(size=(50, 13)).astype(np.float32)
    whole = net.predict(x, batch_size=len(x))
    for batch_size in (1, 3, 49):
        np.testing.assert_allclose(net.predict(x, batch_size=batch_size), whole, **tol(np.float32))


# --- NumpyChromaNet construction -------------------------------------------------------


def test_numpy_chroma_net_roundtrip():
    # torch -> numpy -> torch keeps every array exactly
    net = _torch_net(hidden=8, n_hidden_layers=2)
    back = ChromaNet.from_numpy(net.to_numpy())
    assert back.state_dict().keys() == net.state_dict().keys()
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    npnet = net.to_numpy()
    assert (npnet.in_dim, npnet.hidden, npnet.n_hidden_layers) == (13, 8, 2)
    assert set(npnet.state()) == set(net.state_dict()) - {"mean", "std"}


def test_numpy_chroma_net_exception():
    w = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="at least one hidden and one output layer, got 1 layers"):
        NumpyChromaNet([(np.zeros((2, 3)), np.zeros(2))], np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=re.escape("hidden.0.weight must be (out, in) with a bias (out,), got "
                                                   "shapes (4, 3) and (5,)")):
        NumpyChromaNet([(w, np.zeros(5)), (np.zeros((2, 4)), np.zeros(2))], np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="out.weight takes 5 inputs, the layer before gives 4"):
        NumpyChromaNet([(w, np.zeros(4)), (np.zeros((2, 5)), np.zeros(2))], np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="hidden layers must share one width, got 6 in hidden.1.weight and 4"):
        NumpyChromaNet([(w, np.zeros(4)), (np.zeros((6, 4)), np.zeros(6)), (np.zeros((2, 6)), np.zeros(2))],
                       np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="out.weight must give 2 outputs"):
        NumpyChromaNet([(w, np.zeros(4)), (np.zeros((3, 4)), np.zeros(3))], np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=re.escape("mean and std must have shape (3,), got (3,) and (4,)")):
        NumpyChromaNet([(w, np.zeros(4)), (np.zeros((2, 4)), np.zeros(2))], np.zeros(3), np.ones(4))
    state = _torch_net().to_numpy().state()
    del state["out.bias"]
    with pytest.raises(ValueError, match=re.escape("not a chroma network's (missing ['out.bias'], unexpected [])")):
        NumpyChromaNet.from_state(state, np.zeros(13), np.ones(13))


# --- Model: numpy networks, the files as before ------------------------------------------


def test_model_holds_numpy_networks(tiny_configs, rng, tol):
    # a Model built from trained torch networks holds numpy ones, predicting as torch did
    nets = [_torch_net(tiny_configs["features"].dim, 8, 2, seed=s) for s in (0, 1)]
    model = Model(nets, tiny_configs["features"], tiny_configs["train"])
    assert all(isinstance(n, NumpyChromaNet) for n in model.networks)
    x = rng.normal(size=(40, tiny_configs["features"].dim)).astype(np.float32)
    for i, net in enumerate(nets):
        np.testing.assert_allclose(model.predict_uv(x, i), predict(net, x), **tol(np.float32))
    with pytest.raises(TypeError, match="must be NumpyChromaNet or ChromaNet, got str"):
        Model(["net"], tiny_configs["features"], tiny_configs["train"])


def test_model_save_same_bytes_as_torch_networks(tmp_path, tiny_configs):
    # the files of a model saved from numpy networks are those torch's state_dict gave (safetensors.torch)
    from safetensors.torch import save as torch_save

    from deepcolor import __version__

    net = _torch_net(tiny_configs["features"].dim, 8, 2)
    Model([net], tiny_configs["features"], tiny_configs["train"]).save(tmp_path / "m")
    state = {k: v for k, v in net.state_dict().items() if k not in ("mean", "std")}
    want = torch_save(state, metadata={"format": f"deepcolor-model {__version__}"})
    assert (tmp_path / "m" / "net-000.safetensors").read_bytes() == want


def test_model_bundled_save_same_bytes(tmp_path):
    # loading and saving the bundled model reproduces its network files byte for byte
    Model.load(DEFAULT_MODEL).save(tmp_path / "m")
    manifest = json.loads((DEFAULT_MODEL / MANIFEST).read_text())
    for name in manifest["files"]:
        assert (tmp_path / "m" / name).read_bytes() == (DEFAULT_MODEL / name).read_bytes(), name
    saved = json.loads((tmp_path / "m" / MANIFEST).read_text())
    for key in ("networks", "files", "feature_config", "train_config", "clusters", "clusters_sha256"):
        assert saved[key] == manifest[key], key


def test_model_bundled_predict_uv_unit(tol):
    # golden values: torch's forward pass of the bundled networks, on real features of a photo
    import cv2
    import skimage.data

    from deepcolor.color import rgb_to_luma
    from deepcolor.features import compute_features

    model = Model.load(DEFAULT_MODEL)
    y = cv2.resize(rgb_to_luma(skimage.data.coffee()).astype(np.float32), (61, 47), interpolation=cv2.INTER_AREA)
    fcfg = model.feature_config
    x = compute_features(y, fcfg.features, fcfg.params()).reshape(-1, fcfg.dim)  # (47 * 61, 93)
    for i, net in enumerate(model.networks):
        want = predict(ChromaNet.from_numpy(net), x)
        got = model.predict_uv(x, i)
        np.testing.assert_allclose(got, want, **tol(np.float32))
        assert np.abs(got - want).max() < 1e-5


# --- loading and colorizing without torch ----------------------------------------------------

_NO_TORCH = textwrap.dedent("""
    import sys
    import numpy as np
    from deepcolor.ensemble import Model
    from deepcolor.colorize import colorize_luma
    from deepcolor.modelfiles import ModelError

    try:
        model = Model.load(sys.argv[1])
    except ModelError as exc:
        print("ModelError", exc)
    else:
        y = np.random.default_rng(0).random((45, 37)).astype(np.float32)
        rgb = colorize_luma(model, y)
        print("colorized", rgb.shape, rgb.dtype)
    print("torch imported:", "torch" in sys.modules)
""")


def _run_fresh(model_dir):
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, str(model_dir)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_model_load_colorize_without_torch(tiny_model_dir):
    # a patch + DAISY model; a model with semantic features also loads the scene parser, whose
    # torch-free reading is features/' own (the bundled model is not checked here for that reason)
    out = _run_fresh(tiny_model_dir)
    assert "colorized (45, 37, 3) uint8" in out
    assert "torch imported: False" in out


def _rewrite(model_dir, name, data):
    """Replace a model file and its checksum: a model corrupt past the checksums."""
    (model_dir / name).write_bytes(data)
    path = model_dir / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"][name] = _sha(data)
    path.write_text(json.dumps(manifest))


def test_model_load_exception_corrupt_weights(tiny_model_dir, tmp_path):
    # well-formed safetensors of the wrong network: the message names the weights file
    from safetensors.numpy import save

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    state = Model.load(model_dir).networks[0].state()
    state["out.weight"] = state["out.weight"][:, :-1].copy()
    _rewrite(model_dir, "net-000.safetensors", save(state))
    match = (f"{model_dir / 'net-000.safetensors'}: inconsistent model (ValueError: out.weight takes 15 inputs, "
             f"the layer before gives 16); the model is corrupt")
    with pytest.raises(ModelError, match=re.escape(match)):
        Model.load(model_dir)
    out = _run_fresh(model_dir)  # the same message, without torch
    assert f"ModelError {match}" in out and "torch imported: False" in out


def test_model_load_exception_corrupt_normalisation(tiny_model_dir, tmp_path):
    import io

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    buf = io.BytesIO()
    np.savez(buf, mean=np.zeros(81, np.float32))  # no std
    _rewrite(model_dir, "net-000.npz", buf.getvalue())
    with pytest.raises(ModelError, match=re.escape(f"{model_dir / 'net-000.npz'}: inconsistent model (KeyError")):
        Model.load(model_dir)


# --- training from a loaded (numpy) network ------------------------------------------------


def test_train_ensemble_from_numpy_init(tiny_features_dir, tiny_model_dir, tiny_configs, torch_one_thread):
    # as bench_pipeline does: a loaded model's network warm-starts every cluster's
    from deepcolor.train import train_ensemble

    init = Model.load(tiny_model_dir).networks[0]
    model = train_ensemble(tiny_features_dir, tiny_configs["train"].replace(max_epochs=2), tiny_configs["clusters"],
                           quiet=True, init=init)
    assert model.is_ensemble and all(isinstance(n, NumpyChromaNet) for n in model.networks)
    assert all(n.hidden == init.hidden and n.in_dim == init.in_dim for n in model.networks)
