"""The chrominance network's forward pass in numpy: colorizing without torch.

A trained `deepcolor.networks.ChromaNet` (Cheng et al. 2015, Sec. 3.2: three
hidden layers with ReLU, a linear U, V output) is, at inference, input
normalisation and a few float32 matrix products. `NumpyChromaNet` holds its
weights as numpy arrays, in torch's names and layout, and runs that forward
pass; `deepcolor.ensemble.Model` holds these, so loading a model and
colorizing never import torch. Training converts to and from torch with
`ChromaNet.from_numpy` and `ChromaNet.to_numpy`.
"""

import functools

import numpy as np

# Rows per matrix product. Per 256 x 171 image (43776 rows of 93 features,
# the bundled networks, one thread, median of 11 rounds on 2 shared cores):
# 22.4 ms in batches of 1024, 22.1 of 2048, 21.9 of 4096, 22.0 of 8192 and
# 28.8 ms in batches of 65536, which fall out of cache.
BATCH_SIZE = 4096


class NumpyChromaNet:
    """Feature vector (N, D) -> chrominance (N, 2), the forward pass of a trained `ChromaNet` in numpy.

    Parameters
    ----------
    layers : list of (ndarray of shape (out, in), ndarray of shape (out,))
        Weight and bias of each hidden layer, then of the output layer (out = 2),
        laid out as torch's ``nn.Linear`` holds them (``y = x @ weight.T + bias``).
        Cast to float32.
    mean, std : ndarray of shape (D,)
        The input normalisation: the network sees ``(x - mean) / std``. Cast to float32.

    Raises
    ------
    ValueError
        The arrays do not chain into a network of constant hidden width with
        a (U, V) output, naming the array and its shape.

    Notes
    -----
    Dropout and semantic dropout act only while training, so the forward
    pass here has neither. Its results equal torch's within float32 rounding
    (the products are summed in another order).
    """

    def __init__(self, layers, mean, std):
        layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        if len(layers) < 2:
            raise ValueError(f"a chroma network has at least one hidden and one output layer, got {len(layers)} layers")
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        for i, (w, b) in enumerate(layers):
            name = _layer_names(i, len(layers))[0]
            if w.ndim != 2 or b.shape != w.shape[:1]:
                raise ValueError(f"{name} must be (out, in) with a bias (out,), got shapes {w.shape} and {b.shape}")
            if i and w.shape[1] != layers[i - 1][0].shape[0]:
                before = layers[i - 1][0].shape[0]
                raise ValueError(f"{name} takes {w.shape[1]} inputs, the layer before gives {before}")
            if i < len(layers) - 1 and w.shape[0] != layers[0][0].shape[0]:
                raise ValueError(f"hidden layers must share one width, got {w.shape[0]} in {name} and "
                                 f"{layers[0][0].shape[0]} before")
        if layers[-1][0].shape[0] != 2:
            raise ValueError(f"out.weight must give 2 outputs (U, V), got {layers[-1][0].shape[0]}")
        in_dim = layers[0][0].shape[1]
        if mean.shape != (in_dim,) or std.shape != (in_dim,):
            raise ValueError(f"mean and std must have shape ({in_dim},), got {mean.shape} and {std.shape}")
        self.layers, self.mean, self.std = layers, mean, std

    @property
    def in_dim(self):
        """Length D of the feature vector."""
        return self.layers[0][0].shape[1]

    @property
    def hidden(self):
        """Width of the hidden layers (``ChromaNet``'s and `TrainConfig`'s ``hidden``)."""
        return self.layers[0][0].shape[0]

    @property
    def n_hidden_layers(self):
        return len(self.layers) - 1

    def state(self):
        """The weights by torch's names (``hidden.0.weight``, ..., ``out.bias``), normalisation excluded."""
        out = {}
        for i, (w, b) in enumerate(self.layers):
            wname, bname = _layer_names(i, len(self.layers))
            out[wname], out[bname] = w, b
        return out

    @classmethod
    def from_state(cls, state, mean, std):
        """The network of weights by torch's names (`state`) and its normalisation.

        Raises
        ------
        ValueError
            A name is missing or unexpected, or the shapes do not chain.
        """
        n = sum(1 for k in state if k.startswith("hidden.") and k.endswith(".weight")) + 1
        expected = [name for i in range(n) for name in _layer_names(i, n)]
        if set(state) != set(expected):
            missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            raise ValueError(f"the weights are not a chroma network's (missing {missing}, unexpected {extra})")
        return cls([(state[w], state[b]) for w, b in (_layer_names(i, n) for i in range(n))], mean, std)

    def predict(self, x, batch_size=BATCH_SIZE, threads=1):
        """Chrominance (N, 2) float32 for features `x` (N, D).

        Parameters
        ----------
        x : ndarray of shape (N, D)
            Cast to float32.
        batch_size : int
            Rows per matrix product (`BATCH_SIZE`, measured).
        threads : int or None
            BLAS threads for the products (threadpoolctl); None leaves the
            BLAS library's own setting (all cores, for OpenBLAS).

        Raises
        ------
        ValueError
            `x` is not (N, D).

        Notes
        -----
        One thread by default, as `deepcolor.colorize` runs torch: the products
        are small, and a second OpenBLAS thread made a 256 x 171 image's
        prediction slower on 2 cores (25.0 ms against 22.3 ms with one; 10x
        slower while other processes kept the cores busy); with
        ``colorize --jobs N`` every worker would otherwise start a thread per core.
        torch (`deepcolor.networks.predict`, one thread) took 18.8 ms.
        """
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"features must have shape (N, {self.in_dim}), got {x.shape}")
        if threads is None:
            return self._forward(x, batch_size)
        with _blas_threads().limit(limits=threads, user_api="blas"):
            return self._forward(x, batch_size)

    def _forward(self, x, batch_size):
        """The forward pass of `predict` on checked float32 features (N, D)."""
        out = np.empty((len(x), 2), np.float32)
        *hidden, (w_out, b_out) = self.layers
        for i in range(0, len(x), batch_size):
            h = x[i:i + batch_size] - self.mean  # (B, D), a new array
            h /= self.std
            for w, b in hidden:
                h = h @ w.T  # (B, hidden)
                h += b
                np.maximum(h, 0, out=h)  # ReLU
            np.matmul(h, w_out.T, out=out[i:i + batch_size])  # (B, 2), linear U, V
            out[i:i + batch_size] += b_out
        return out


@functools.cache
def _blas_threads():
    """The process's threadpoolctl controller (found once: a few ms; each limit then costs microseconds)."""
    from threadpoolctl import ThreadpoolController  # a dependency of scikit-learn's, and ours

    return ThreadpoolController()


def _layer_names(i, n_layers):
    """torch's names of layer `i`'s weight and bias in a network of `n_layers` (the last is ``out``)."""
    prefix = "out" if i == n_layers - 1 else f"hidden.{i}"
    return f"{prefix}.weight", f"{prefix}.bias"
