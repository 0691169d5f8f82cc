"""Tests for deepcolor.training: the one loop gives what the three loops before it gave.

The expected numbers were produced by the code before the loop was shared
(commit 26f7128: `deepcolor.networks.train_network` with its own loop, and
`deepcolor.baselines.common.fit`) by running `_results()` below with
OMP_NUM_THREADS=1. Same random draws in the same order and the same float
operations give the same losses; a reordered draw moves them by far more
than the tolerance.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deepcolor.networks import train_network
from deepcolor.training import fit, fit_held_out, flip_half

OLD = {
    "plain": {"train_mse": [0.041674356907606125, 0.021689446270465852, 0.017142029479146004,
                            0.012506453134119511, 0.012045949511229993, 0.010002686455845834],
              "val_mse": [0.030248204246163368, 0.01979493722319603, 0.015676062554121017, 0.012261302210390568,
                          0.011360364966094494, 0.010285375639796257],
              "best_epoch": 5, "best_val_mse": 0.010285375639796257, "epochs_run": 6},
    "init": {"train_mse": [0.010484118107706308, 0.00984871881082654, 0.009199374821037054, 0.008033324778079987],
             "val_mse": [0.007916087284684181, 0.006156761199235916, 0.004495066590607166, 0.00448564114049077],
             "init_val_mse": 0.009785471484065056, "best_epoch": 3, "best_val_mse": 0.00448564114049077,
             "epochs_run": 4},
    "held_out": {"train_loss": [0.04304991848766804, 0.02629563119262457, 0.02289364393800497,
                                0.020141246495768428, 0.018938784021884203],
                 "val_loss": [0.028599906712770462, 0.026522597298026085, 0.022085797041654587,
                              0.02010977268218994, 0.0189216211438179],
                 "best_epoch": 4, "best_val_loss": 0.0189216211438179, "epochs_run": 5, "n_train": 8, "n_val": 2},
}


def _cfg(**changes):
    base = dict(seed=3, hidden=8, n_hidden_layers=2, dropout=0.1, semantic_dropout=0.5, lr=1e-2,
                weight_decay=1e-4, batch_size=16, max_epochs=6, patience=2)
    return SimpleNamespace(**{**base, **changes})


def _results():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 5)).astype(np.float32)
    y = np.tanh(x[:, :2] @ rng.normal(size=(2, 2))).astype(np.float32) * 0.2
    w = rng.uniform(0.5, 2, size=100).astype(np.float32)
    net, plain = train_network(x[:80], y[:80], x[80:], y[80:], _cfg(), block=(3, 5))
    _, init = train_network(x[:80], y[:80], x[80:], y[80:], _cfg(seed=4, max_epochs=4), w_train=w[:80],
                            w_val=w[80:], init=net)
    torch.manual_seed(0)
    imgs = torch.rand(10, 1, 8, 8)
    target = torch.cat([imgs, imgs.flip(-1)], dim=1) * 0.5
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 2, 3, padding=1))
    held_out = fit_held_out(model, lambda m, a, b: torch.nn.functional.mse_loss(m(a), b), (imgs, target), 5, 3,
                            0.01, 2, val_fraction=0.2, patience=3, flip=True)
    return {"plain": plain, "init": init, "held_out": held_out}


def test_fit_unit_same_as_before_the_shared_loop(torch_one_thread):
    got = _results()
    for name, expected in OLD.items():
        history = {k: v for k, v in got[name].items() if k != "seconds"}
        assert list(history) == list(expected), name  # same keys in the same order (saved in manifests)
        for key, value in expected.items():
            assert history[key] == pytest.approx(value, rel=1e-6), (name, key)


def _linear():
    torch.manual_seed(0)
    x = torch.randn(20, 3)
    return torch.nn.Linear(3, 1), (x, x @ torch.tensor([[1.0], [-2.0], [0.5]]))


def _mse(m, xb, yb):
    return torch.nn.functional.mse_loss(m(xb), yb)


def _held_out_mse(tensors):
    def validate(m):
        with torch.no_grad():
            return float(_mse(m, *tensors))
    return validate


def test_fit_initial_loss_kept_when_never_beaten(torch_one_thread):
    model, tensors = _linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=5.0)  # far too large: no epoch beats the start
    h = fit(model, _mse, tensors, opt, torch.Generator().manual_seed(0), 3, 4,
            validate=_held_out_mse(tensors), initial_loss=-1.0)
    assert h["best_epoch"] == -1 and h["best_val_loss"] == -1.0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_fit_without_validation_keeps_last_epoch(torch_one_thread):
    model, tensors = _linear()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    h = fit(model, _mse, tensors, opt, torch.Generator().manual_seed(0), 2, 4)
    assert h["val_loss"] == [None, None] and h["best_val_loss"] is None and h["best_epoch"] == 1
    assert not model.training


def test_fit_exception_diverged(torch_one_thread):
    model, tensors = _linear()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match=r"loss nan in epoch 0; try a smaller lr than 0.1"):
        fit(model, lambda m, xb, yb: _mse(m, xb, yb) * float("nan"), tensors, opt, torch.Generator(), 1, 4)


def test_flip_half_invariant_labels_kept():
    labels = torch.arange(6)
    assert torch.equal(flip_half([torch.zeros(6, 1, 2, 2), labels], torch.Generator().manual_seed(0))[1], labels)
