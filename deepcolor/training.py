"""One training loop for the networks deepcolor trains: mini-batches, early stopping, best weights kept.

`fit` is the loop: a seeded batch order each epoch, optional mirroring of a
random half of each batch (`flip_half`), a held-out loss after every epoch,
and the weights of the best held-out epoch restored at the end. What differs
between the networks trained with it comes in as small callables and
settings: the batch loss, the held-out loss, the optimizer.

- Cheng et al.'s chrominance network (`deepcolor.networks.train_network`):
  pixels, held out by whole images, the held-out error computed by the
  network's own prediction.
- The comparison systems (`deepcolor.baselines`): whole images, a seeded
  share held out (`fit_held_out`), mirroring on.

The distillation of the grey-image parser (`deepcolor.distill`) keeps its own
loop: it validates every few hundred steps rather than per epoch, keeps the
best validation *accuracy*, draws its random views from a numpy generator and
decays its learning rate per step.
"""

import logging
import math
import time

import torch

log = logging.getLogger(__name__)


def flip_half(batch, gen):
    """Mirror a random half of a batch's items left to right (the same items in every tensor).

    Parameters
    ----------
    batch : list of torch.Tensor
        Same length on the first axis. Tensors of 3 or more dimensions are
        images with the width last and are mirrored; others (labels) are kept.
    gen : torch.Generator
        Draws one uniform number per item (seeded: the same state mirrors
        the same items).

    Returns
    -------
    list of torch.Tensor
    """
    mirror = torch.rand(len(batch[0]), generator=gen) < 0.5  # (N,)
    return [torch.where(mirror.view(-1, *[1] * (t.ndim - 1)), t.flip(-1), t) if t.ndim >= 3 else t
            for t in batch]


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _epoch(module, loss_fn, tensors, optimizer, gen, order, batch_size, flip, epoch, check_finite):
    """One pass over the items `order` in batches; returns the sum of batch loss x batch size."""
    total = 0.0
    for i in range(0, len(order), batch_size):
        b = order[i:i + batch_size]
        batch = [t[b] for t in tensors]
        loss = loss_fn(module, *(flip_half(batch, gen) if flip else batch))
        if check_finite and not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged: loss {loss.item()} in epoch {epoch}; "
                                     f"try a smaller lr than {optimizer.param_groups[0]['lr']}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(b)
    return total


def fit(module, loss_fn, tensors, optimizer, gen, epochs, batch_size, *, train_idx=None, validate=None,
        patience=None, min_delta=0.0, flip=False, initial_loss=None, progress=None, check_finite=True):
    """Train `module` in place on mini-batches; restore the best held-out epoch's weights.

    Parameters
    ----------
    module : torch.nn.Module
    loss_fn : callable
        ``loss_fn(module, *batch) -> scalar tensor``, where ``batch`` holds
        the rows of each of `tensors` for the batch's items.
    tensors : sequence of torch.Tensor
        Same length on the first axis (items: pixels, images).
    optimizer : torch.optim.Optimizer
    gen : torch.Generator
        Draws each epoch's batch order, then (`flip`) each batch's mirroring.
    epochs, batch_size : int
        Maximum number of passes over the training items; items per batch.
    train_idx : torch.Tensor of int64, optional
        The items trained on (default: all).
    validate : callable, optional
        ``validate(module) -> float``, the held-out loss (lower is better)
        after every epoch. Without it the last epoch's weights are kept.
    patience, min_delta : int or None, float, optional
        Stop after `patience` epochs without a held-out loss lower than the
        best by more than `min_delta`; None runs all `epochs`.
    flip : bool, optional
        Mirror a seeded random half of each training batch (`flip_half`).
    initial_loss : float, optional
        The held-out loss of `module` as given (fine-tuning): the score an
        epoch must beat; if none does, the given weights are restored.
    progress : callable, optional
        Called after each epoch with a dict (epoch, train_loss, val_loss).
    check_finite : bool, optional
        Raise at the first batch loss that is not finite (else train on).

    Returns
    -------
    history : dict
        ``train_loss`` and ``val_loss`` per epoch, ``best_epoch`` (-1: none
        beat `initial_loss`), ``best_val_loss``, ``epochs_run``, ``seconds``.

    Raises
    ------
    FloatingPointError
        When a batch's loss is not finite (training diverged) and `check_finite`.
    """
    n_train = len(tensors[0]) if train_idx is None else len(train_idx)
    history = {"train_loss": [], "val_loss": []}
    best, best_state, best_epoch, stale = math.inf, None, -1, 0
    if initial_loss is not None:
        best, best_state = initial_loss, _state(module)
    start = time.perf_counter()
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(n_train, generator=gen)
        if train_idx is not None:
            order = train_idx[order]
        history["train_loss"].append(_epoch(module, loss_fn, tensors, optimizer, gen, order, batch_size, flip,
                                            epoch, check_finite) / n_train)
        val_loss = None if validate is None else validate(module)
        history["val_loss"].append(val_loss)
        if progress is not None:
            progress({"epoch": epoch, "train_loss": history["train_loss"][-1], "val_loss": val_loss})
        log.debug("epoch %d train loss %.6f held-out loss %s", epoch, history["train_loss"][-1], val_loss)
        if val_loss is None:
            best_epoch = epoch
            continue
        if val_loss < best - min_delta:
            best, best_epoch, stale = val_loss, epoch, 0
            best_state = _state(module)
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    history.update(best_epoch=best_epoch, best_val_loss=None if validate is None else best,
                   epochs_run=epoch + 1, seconds=round(time.perf_counter() - start, 3))
    return history


def _n_held_out(n, val_fraction):
    """Held-out items: round(n * val_fraction), at least 1 and at most n - 1 (0 if n < 2 or fraction 0)."""
    if n < 2 or val_fraction == 0:
        return 0
    return min(n - 1, max(1, round(n * val_fraction)))


def _check_fit_args(tensors, epochs, batch_size, lr, val_fraction, patience, flip):
    if not tensors or len(tensors[0]) == 0:
        raise ValueError("training needs at least one item, got none")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"tensors must have the same length (first axis), got {lengths}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
        raise ValueError(f"patience must be a positive int or None, got {patience!r}")
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be True or False, got {flip!r}")


def _mean_loss(module, loss_fn, tensors, idx, batch_size):
    """Mean of `loss_fn` over the items `idx`, in eval mode, batch by batch."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(idx), batch_size):
            b = idx[i:i + batch_size]
            total += float(loss_fn(module, *(t[b] for t in tensors))) * len(b)
    return total / len(idx)


def fit_held_out(model, loss_fn, tensors, epochs, batch_size, lr, seed, progress=None, val_fraction=0.1,
                 patience=None, flip=False):
    """`fit` with Adam and a seeded share of the items held out; what the comparison systems train with.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place.
    loss_fn : callable
        ``loss_fn(model, *batch) -> scalar tensor`` (see `fit`); also the
        held-out loss, computed in eval mode.
    tensors : sequence of torch.Tensor
        Same length on the first axis (items, e.g. images).
    epochs : int
        Maximum number of passes over the training items.
    batch_size : int
    lr : float
        Adam's learning rate.
    seed : int
        Seeds the held-out split, the batch order and the mirroring.
    progress : callable, optional
        Called after each epoch with a dict (epoch, train_loss, val_loss).
    val_fraction : float, optional
        Share of the items held out (at least 1 and at most all but 1 when
        there are 2 or more items); 0 trains on all of them.
    patience : int, optional
        Stop after this many epochs without a lower held-out loss; None
        runs all `epochs`.
    flip : bool, optional
        Mirror a seeded random half of each training batch left to right
        (`flip_half`); held-out items are never mirrored.

    Returns
    -------
    history : dict
        ``train_loss`` and ``val_loss`` per epoch (``val_loss`` None without
        held-out items), ``best_epoch``, ``best_val_loss``, ``epochs_run``,
        ``n_train``, ``n_val``, ``seconds``.

    Raises
    ------
    ValueError
        For empty or unequal tensors and invalid settings.
    FloatingPointError
        When a batch's loss is not finite (training diverged).

    Notes
    -----
    A fixed number of epochs bounds the training time (issue #6 budgets 20
    minutes per baseline on 2 cores); the held-out loss, computed in eval
    mode after every epoch, picks the weights that are returned, as for
    Cheng et al.'s network (`deepcolor.networks.train_network`). Without
    held-out items the last epoch's weights are returned.
    """
    _check_fit_args(tensors, epochs, batch_size, lr, val_fraction, patience, flip)
    gen = torch.Generator().manual_seed(seed)
    n = len(tensors[0])
    perm = torch.randperm(n, generator=gen)
    n_val = _n_held_out(n, val_fraction)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def validate(module):
        return _mean_loss(module, loss_fn, tensors, val_idx, batch_size)

    h = fit(model, loss_fn, tensors, opt, gen, epochs, batch_size, train_idx=train_idx,
            validate=validate if n_val else None, patience=patience, min_delta=1e-9, flip=flip,
            progress=progress)
    return {"train_loss": h["train_loss"], "val_loss": h["val_loss"], "best_epoch": h["best_epoch"],
            "best_val_loss": h["best_val_loss"], "epochs_run": h["epochs_run"], "n_train": len(train_idx),
            "n_val": n_val, "seconds": h["seconds"]}
