"""The chrominance network of Cheng et al. (2015), Sec. 3.2, and its training.

A fully connected network maps a pixel's feature vector to its (U, V): three
hidden layers with ReLU and a linear output of two neurons, trained by least
squares on pixels sampled from the reference images.

This module is training's (torch). A trained network colorizes as a
`deepcolor.npnet.NumpyChromaNet` (numpy, no torch): `ChromaNet.to_numpy` and
`ChromaNet.from_numpy` convert between the two.
"""

import numpy as np
import torch
from torch import nn

from deepcolor.npnet import NumpyChromaNet
from deepcolor.training import fit


class ChromaNet(nn.Module):
    """Feature vector (N, D) -> chrominance (N, 2).

    Input normalisation (per-feature mean and standard deviation of the
    training pixels) is held as buffers so a loaded network needs nothing else.
    """

    def __init__(self, in_dim, hidden=64, n_hidden_layers=3, dropout=0.0, block=None, block_dropout=0.0):
        super().__init__()
        # Block dropout (training only): for a random `block_dropout` share of the
        # pixels, the input columns block[0]:block[1] (one feature, e.g. the
        # semantic probabilities) are set to their training mean.
        self.block, self.block_dropout = block, block_dropout
        widths = [in_dim] + [hidden] * n_hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], 2)  # linear U, V output (paper)
        self.dropout = dropout  # applied after each hidden ReLU while training only
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    @property
    def in_dim(self):
        return self.hidden[0].in_features

    @classmethod
    def from_numpy(cls, net, dropout=0.0, block=None, block_dropout=0.0):
        """The torch network of a `deepcolor.npnet.NumpyChromaNet` (weights and normalisation copied), to train.

        `dropout`, `block` and `block_dropout` are the training settings of
        `ChromaNet` (a stored network has none).
        """
        out = cls(net.in_dim, net.hidden, net.n_hidden_layers, dropout, block, block_dropout)
        state = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in net.state().items()}
        state["mean"], state["std"] = torch.from_numpy(np.array(net.mean)), torch.from_numpy(np.array(net.std))
        out.load_state_dict(state, strict=True)
        return out

    def to_numpy(self):
        """This network's forward pass in numpy (`deepcolor.npnet.NumpyChromaNet`), its arrays copied."""
        state = {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}
        return NumpyChromaNet.from_state({k: v for k, v in state.items() if k not in ("mean", "std")},
                                         state["mean"], state["std"])

    def forward(self, x):
        x = (x - self.mean) / self.std  # (N, D)
        if self.training and self.block is not None and self.block_dropout > 0:
            a, b = self.block
            keep = (torch.rand(len(x), 1) >= self.block_dropout).to(x.dtype)  # (N, 1)
            x = torch.cat([x[:, :a], x[:, a:b] * keep, x[:, b:]], dim=1)
        for layer in self.hidden:
            x = nn.functional.dropout(torch.relu(layer(x)), self.dropout, self.training)  # (N, hidden)
        return self.out(x)  # (N, 2)


def normalisation(x):
    """Per-column mean and standard deviation (std floored at 1e-6), float32."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = np.sqrt(np.maximum(x.var(axis=0, dtype=np.float64), 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


@torch.no_grad()
def predict(net, x, batch_size=65536):
    """Run `net` on features `x` (N, D) float32; returns (N, 2) float32."""
    net.eval()
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():  # no autograd graph: faster, and no memory held for gradients
        out = [net(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, 2), np.float32)


def _mse(net, x, y, weights=None, batch_size=65536):
    err = ((predict(net, x, batch_size) - y) ** 2).mean(axis=1)  # (N,)
    return float(np.mean(err) if weights is None else np.average(err, weights=weights))


def _batch_mse(net, x, y, w=None):
    """Mean squared error of a batch, each pixel's weighted by `w` (B, 1) if given."""
    err = (net(x) - y) ** 2  # (B, 2)
    return torch.mean(err if w is None else w * err)


def train_network(x_train, y_train, x_val, y_val, cfg, progress=None, block=None, w_train=None, w_val=None,
                  init=None):
    """Fit a `ChromaNet` by least squares with Adam and early stopping.

    Parameters
    ----------
    x_train, x_val : ndarray of shape (N, D), float32
        Pixel features of the training and held-out reference images.
    y_train, y_val : ndarray of shape (N, 2), float32
        Their true U, V.
    cfg : deepcolor.networks_config.TrainConfig
    progress : callable, optional
        Called after each epoch with a dict (epoch, train_mse, val_mse).
    block : (int, int), optional
        Columns of the feature that ``cfg.semantic_dropout`` drops (the semantic feature).
    w_train, w_val : ndarray of shape (N,), optional
        Per-pixel weights of the squared error (see `deepcolor.train.image_weights`);
        uniform if not given.
    init : ChromaNet or deepcolor.npnet.NumpyChromaNet, optional
        Start from its weights and input normalisation (fine-tuning); its
        held-out MSE before training is the score to beat, so the result is
        never worse on the held-out images than `init`.

    Returns
    -------
    net : ChromaNet
        With the weights of the epoch of lowest held-out MSE.
    history : dict
        Per-epoch train and held-out MSE, best epoch, seconds.

    Notes
    -----
    The loop is `deepcolor.training.fit`: a seeded pixel order per epoch
    (``cfg.seed``), the held-out MSE after every epoch, stopping after
    ``cfg.patience`` epochs without a gain of 1e-7, no mirroring (pixels).
    """
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError(
            f"training needs pixels in both parts, got {len(x_train)} training and "
            f"{len(x_val)} held-out pixels"
        )
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = ChromaNet(x_train.shape[1], cfg.hidden, cfg.n_hidden_layers, cfg.dropout,
                    block, cfg.semantic_dropout if block is not None else 0.0)
    if init is None:
        mean, std = normalisation(x_train)
        net.mean.copy_(torch.from_numpy(mean))
        net.std.copy_(torch.from_numpy(std))
    else:
        if not isinstance(init, ChromaNet):  # a loaded model's network
            init = ChromaNet.from_numpy(init)
        if init.in_dim != net.in_dim or init.hidden[0].out_features != cfg.hidden or len(init.hidden) != len(net.hidden):
            raise ValueError("the initial network's shape differs from the training settings'")
        net.load_state_dict(init.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.float32))
    tensors = (xt, yt) if w_train is None else (xt, yt, torch.from_numpy(np.asarray(w_train, np.float32))[:, None])
    init_val_mse = None if init is None else _mse(net, x_val, y_val, w_val)

    def report(h):
        progress({"epoch": h["epoch"], "train_mse": h["train_loss"], "val_mse": h["val_loss"]})

    h = fit(net, _batch_mse, tensors, opt, gen, cfg.max_epochs, cfg.batch_size,
            validate=lambda m: _mse(m, x_val, y_val, w_val), patience=cfg.patience, min_delta=1e-7,
            initial_loss=init_val_mse, progress=None if progress is None else report,
            check_finite=False)  # as ever: a NaN epoch never counts as best, and patience ends it
    history = {"train_mse": h["train_loss"], "val_mse": h["val_loss"]}
    if init is not None:
        history["init_val_mse"] = init_val_mse
    history.update(best_epoch=h["best_epoch"], best_val_mse=h["best_val_loss"], epochs_run=h["epochs_run"],
                   seconds=h["seconds"])
    return net, history
