"""Tests for deepcolor.baselines (issue #6): Lab helpers, data, training loop, the five baselines."""

import json

import numpy as np
import pytest
import torch

from deepcolor.baselines import AB_RANGE, BASELINES, Baseline, NotFittedError, load_training_set
from deepcolor.baselines.autoencoder import AutoencoderNet
from deepcolor.baselines.data import centre_square
from deepcolor.baselines.layers import count_parameters
from deepcolor.color import lab_to_rgb, luma_to_lightness, rgb_to_lab
from deepcolor.training import fit_held_out as fit
from deepcolor.training import flip_half
from deepcolor.baselines.iizuka import Iizuka, IizukaNet
from deepcolor.baselines.palette import Palette, PaletteNet, fit_palette, nearest_entry
from deepcolor.baselines.unet import (
    UNet,
    UNetClassification,
    UNetRegression,
    ab_grid_index,
    ab_to_class,
    annealed_mean,
    grid_centres,
    occurring_bins,
)
from deepcolor.color import LUMA_WEIGHTS, rgb_to_luma
from deepcolor.modelfiles import MANIFEST, ModelError, _sha

NAMES = sorted(BASELINES)
# Tiny settings: 32 px, 4 channels, 2 epochs; the whole file runs in seconds on one thread.
SMALL = {"size": 32, "width": 4, "epochs": 2, "batch_size": 2, "lr": 1e-2, "seed": 0, "val_fraction": 0.25}
EXTRA = {}
PHOTO_SIZES = [(40, 33), (37, 45), (41, 39), (35, 43)]  # odd, non-square (rows, cols)


def make(name, **changes):
    return BASELINES[name](**{**SMALL, **EXTRA.get(name, {}), **changes})


def _write_photos(folder, tiny_scene, sizes=PHOTO_SIZES, seeds=None):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(sizes):
        seed = i if seeds is None else seeds[i]
        paths.append(folder / f"p{seed}.png")
        Image.fromarray(tiny_scene(h, w, seed)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def photos(tmp_path_factory, tiny_scene):
    """Four tiny colour photos (two-region scenes of conftest) as PNG files."""
    return _write_photos(tmp_path_factory.mktemp("baseline_photos"), tiny_scene)


@pytest.fixture(scope="module")
def labels_of():
    """Scene class of a photo: its seed modulo 2 (p0, p2 -> 0; p1, p3 -> 1)."""
    from pathlib import Path

    return lambda path: int(Path(path).stem[1:]) % 2


@pytest.fixture(scope="module")
def fitted(photos, labels_of):
    """Each baseline fitted on `photos` for 2 epochs (Iizuka with labels). Read-only."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: make(name).fit(photos, labels=labels_of) for name in NAMES}
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(photos):
    return load_training_set(photos, size=32)


def _gray(tiny_scene, h=29, w=23, seed=7):
    """BT.601 luminance (h, w) float32 of a tiny scene, as 8-bit grey inputs are made."""
    rgb = tiny_scene(h, w, seed)
    return (np.rint(rgb.astype(np.float64) @ LUMA_WEIGHTS) / 255.0).astype(np.float32)


# --- Lab ----------------------------------------------------------------------------------------

# Lab (D65) of the sRGB primaries and white; values from B. Lindbloom's colour calculator
# (brucelindbloom.com, sRGB, D65, no adaptation), rounded to 2 decimals.
LAB_GOLDEN = [
    ((255, 0, 0), (53.24, 80.09, 67.20)),
    ((0, 255, 0), (87.73, -86.18, 83.18)),
    ((0, 0, 255), (32.30, 79.19, -107.86)),
    ((255, 255, 255), (100.0, 0.0, 0.0)),
    ((0, 0, 0), (0.0, 0.0, 0.0)),
]


def test_rgb_to_lab_unit():
    rgb = np.array([[c for c, _ in LAB_GOLDEN]], np.uint8)  # (1, 5, 3)
    L, ab = rgb_to_lab(rgb)
    expected = np.array([[lab for _, lab in LAB_GOLDEN]])
    np.testing.assert_allclose(L, expected[..., 0], atol=0.02)
    np.testing.assert_allclose(ab, expected[..., 1:], atol=0.05)


def test_rgb_to_lab_matches_skimage(rng):
    from skimage.color import rgb2lab

    rgb = rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)
    L, ab = rgb_to_lab(rgb)
    ref = rgb2lab(rgb)
    np.testing.assert_allclose(L, ref[..., 0], atol=1e-3)
    np.testing.assert_allclose(ab, ref[..., 1:], atol=1e-3)
    assert L.dtype == ab.dtype == np.float32 and L.shape == (13, 9) and ab.shape == (13, 9, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_lab_roundtrip(rng, dtype):
    rgb8 = rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)
    rgb = rgb8 if dtype == np.uint8 else (rgb8 / 255.0).astype(dtype)
    back = lab_to_rgb(*rgb_to_lab(rgb))
    assert back.shape == (13, 9, 3) and back.dtype == np.float32
    np.testing.assert_allclose(back, rgb8 / 255.0, atol=1e-4)


def test_lab_to_rgb_out_of_gamut_clipped():
    L = np.full((2, 3), 50.0, np.float32)
    ab = np.full((2, 3, 2), 120.0, np.float32)  # outside sRGB
    rgb = lab_to_rgb(L, ab)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_lab_exception():
    with pytest.raises(ValueError, match=r"rgb must have shape \(H, W, 3\)"):
        rgb_to_lab(np.zeros((4, 5), np.uint8))
    with pytest.raises(TypeError, match="rgb must be uint8 or float"):
        rgb_to_lab(np.zeros((4, 5, 3), np.uint16))
    with pytest.raises(ValueError, match=r"L must be \(H, W\) and ab \(H, W, 2\)"):
        lab_to_rgb(np.zeros((4, 5)), np.zeros((5, 4, 2)))


def test_luma_to_lightness_unit():
    from skimage.color import rgb2lab

    y = np.linspace(0.0, 1.0, 13 * 9, dtype=np.float32).reshape(13, 9)
    ref = rgb2lab(np.repeat(y[..., None], 3, axis=2))[..., 0]  # lightness of the grey image
    L = luma_to_lightness(y)
    assert L.dtype == np.float32 and L.shape == (13, 9)
    np.testing.assert_allclose(L, ref, atol=1e-3)


def test_ab_range_covers_srgb():
    levels = np.arange(0, 256, 15, dtype=np.uint8)  # 0, 15, ..., 255
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(1, -1, 3)
    _, ab = rgb_to_lab(rgb)
    assert np.abs(ab).max() <= AB_RANGE
    assert np.abs(ab).max() > 100.0  # and the range is not much wider than needed


# --- training data --------------------------------------------------------------------------------


def test_load_training_set_shape(data, photos):
    n = len(photos)
    assert data.L.shape == (n, 1, 32, 32) and data.ab.shape == (n, 2, 32, 32)
    assert data.L.dtype == data.ab.dtype == torch.float32
    assert data.labels is None and data.paths == [str(p) for p in photos] and data.skipped == []
    assert 0.0 <= float(data.L.min()) and float(data.L.max()) <= 1.0
    assert -1.0 <= float(data.ab.min()) and float(data.ab.max()) <= 1.0
    assert len(data) == n


def test_load_training_set_unit(photos):
    """L is the lightness of the photo's grey version; ab the colour photo's."""
    from deepcolor.images.read import read_rgb_u8

    data = load_training_set(photos[:1], size=32)
    rgb = centre_square(read_rgb_u8(photos[0]), 32)  # (32, 32, 3)
    np.testing.assert_allclose(data.L[0, 0].numpy(), luma_to_lightness(rgb_to_luma(rgb)) / 100, atol=1e-6)
    np.testing.assert_allclose(data.ab[0].permute(1, 2, 0).numpy() * AB_RANGE, rgb_to_lab(rgb)[1], atol=1e-4)


def test_centre_square_crops_the_middle():
    rgb = np.zeros((10, 30, 3), np.uint8)
    rgb[:, 10:20] = 200  # the central 10 x 10 square is bright, the sides black
    out = centre_square(rgb, 10)
    assert out.shape == (10, 10, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 200 / 255, atol=1e-6)
    up = centre_square(rgb, 20)  # enlarged
    assert up.shape == (20, 20, 3)


def test_load_training_set_skips(tmp_path, photos):
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 24), 128, np.uint8)).save(grey)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    data = load_training_set([photos[0], grey, broken], size=16)
    assert data.paths == [str(photos[0])]
    reasons = dict(data.skipped)
    assert reasons[str(grey)].startswith("near-grey") and reasons[str(broken)].startswith("unreadable")
    with pytest.raises(ValueError, match=r"no usable colour image among 2 path\(s\) \(2 skipped"):
        load_training_set([grey, broken], size=16)


def test_load_training_set_labels(photos, labels_of):
    data = load_training_set(photos, size=16, labels=labels_of)
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [0, 1, 0, 1]
    data = load_training_set(photos, size=16, labels=lambda p: None)
    assert data.labels.tolist() == [-1] * 4


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_load_training_set_labels_exception(photos, bad):
    with pytest.raises(ValueError, match=r"label must be a non-negative int or None, got"):
        load_training_set(photos[:1], size=16, labels=lambda p: bad)


def test_load_training_set_max_images(photos):
    a = load_training_set(photos, size=16, seed=3, max_images=2)
    b = load_training_set(photos, size=16, seed=3, max_images=2)
    assert len(a) == 2 and a.paths == b.paths and set(a.paths) <= {str(p) for p in photos}
    assert len(load_training_set(photos, size=16, max_images=10)) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 4}, "size must be an int >= 8, got 4"),
    ({"size": 16.0}, "size must be an int >= 8, got 16.0"),
    ({"max_images": 0}, "max_images must be a positive int, got 0"),
])
def test_load_training_set_exception(photos, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_training_set(photos, **{"size": 16, **kwargs})


# --- the training loop ------------------------------------------------------------------------------


def _linear_problem():
    torch.manual_seed(0)
    x = torch.randn(20, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return torch.nn.Linear(3, 1), (lambda m, xb, yb: torch.nn.functional.mse_loss(m(xb), yb)), (x, y)


def test_fit_history(torch_one_thread):
    model, loss_fn, tensors = _linear_problem()
    seen = []
    h = fit(model, loss_fn, tensors, epochs=30, batch_size=4, lr=0.05, seed=0, progress=seen.append,
            val_fraction=0.2)
    assert len(h["train_loss"]) == len(h["val_loss"]) == h["epochs_run"] == 30 == len(seen)
    assert (h["n_train"], h["n_val"]) == (16, 4)
    assert h["best_val_loss"] == min(h["val_loss"]) < h["val_loss"][0] / 10
    assert h["val_loss"][h["best_epoch"]] == h["best_val_loss"]
    assert not model.training


def test_fit_keeps_best_weights(torch_one_thread):
    model, loss_fn, tensors = _linear_problem()
    h = fit(model, loss_fn, tensors, epochs=5, batch_size=4, lr=5.0, seed=0)  # lr far too large: loss rises
    x, y = tensors
    val = h["best_val_loss"]
    assert h["best_epoch"] < 4 or val == h["val_loss"][-1]
    # the returned model is the best epoch's: its held-out loss is the best one recorded
    # (the held-out items: the first 2 of fit's first seeded permutation)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = float(loss_fn(model, x[perm[:2]], y[perm[:2]]))
    assert got == pytest.approx(val, rel=1e-5)


def test_fit_patience_and_no_held_out(torch_one_thread):
    model, loss_fn, tensors = _linear_problem()
    h = fit(model, loss_fn, tensors, epochs=50, batch_size=4, lr=5.0, seed=0, patience=2)
    assert h["epochs_run"] < 50
    model, loss_fn, tensors = _linear_problem()
    h = fit(model, loss_fn, tensors, epochs=3, batch_size=4, lr=0.05, seed=0, val_fraction=0)
    assert h["val_loss"] == [None] * 3 and h["best_val_loss"] is None and h["best_epoch"] == 2
    assert h["n_val"] == 0 and h["n_train"] == 20


def test_flip_half():
    gen = torch.Generator().manual_seed(3)
    images = torch.arange(8 * 2 * 3 * 5, dtype=torch.float32).reshape(8, 2, 3, 5)  # (N, C, H, W)
    targets = images[:, 0].long()  # (N, H, W): must follow the same items
    labels = torch.arange(8)
    got = flip_half([images, targets, labels], gen)
    mirrored = [bool(torch.equal(got[0][i], images[i].flip(-1))) for i in range(8)]
    kept = [bool(torch.equal(got[0][i], images[i])) for i in range(8)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each item either mirrored or kept, none mixed
    assert 0 < sum(mirrored) < 8  # this seed mirrors some, not all
    for i in range(8):
        assert torch.equal(got[1][i], images[i, 0].long().flip(-1) if mirrored[i] else targets[i])
    assert torch.equal(got[2], labels)
    # seeded: the same generator state mirrors the same items
    again = flip_half([images], torch.Generator().manual_seed(3))[0]
    assert torch.equal(again, got[0])


def test_fit_flip_trains_on_mirrored_items(torch_one_thread):
    # a target that depends on which side of the image a value is on: with flips the network sees both sides
    x = torch.zeros(12, 1, 1, 4)
    x[:, 0, 0, 0] = 1.0
    seen = []

    def loss_fn(m, xb):
        seen.append(xb[:, 0, 0, 0].clone())
        return (m(xb.flatten(1)) ** 2).mean()

    fit(torch.nn.Linear(4, 1), loss_fn, (x,), epochs=3, batch_size=4, lr=0.01, seed=0, flip=True)
    train_batches = torch.cat(seen[:3])  # the first epoch's training batches (held-out loss follows)
    assert 0 < int((train_batches == 0).sum()) < len(train_batches)  # some items mirrored, some not
    assert bool((seen[3] == 1).all())  # the held-out item: never mirrored
    seen.clear()
    fit(torch.nn.Linear(4, 1), loss_fn, (x,), epochs=1, batch_size=4, lr=0.01, seed=0)
    assert bool((torch.cat(seen) == 1).all())  # flip off: never mirrored (held-out included)


def test_fit_diverged(torch_one_thread):
    model, _, tensors = _linear_problem()
    with pytest.raises(FloatingPointError, match="training diverged: loss nan in epoch 0"):
        fit(model, lambda m, xb, yb: m(xb).sum() * float("nan"), tensors, 1, 4, 0.1, 0)


@pytest.mark.parametrize("changes, message", [
    ({"tensors": ()}, "training needs at least one item, got none"),
    ({"tensors": (torch.zeros(3, 1), torch.zeros(4, 1))}, r"same length \(first axis\), got \[3, 4\]"),
    ({"epochs": 0}, "epochs must be a positive int, got 0"),
    ({"batch_size": 2.0}, "batch_size must be a positive int, got 2.0"),
    ({"lr": 0}, "lr must be a positive finite number, got 0"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
    ({"patience": 0}, "patience must be a positive int or None, got 0"),
    ({"flip": 1}, "flip must be True or False, got 1"),
])
def test_fit_exception(changes, message):
    model, loss_fn, tensors = _linear_problem()
    kwargs = {"tensors": tensors, "epochs": 1, "batch_size": 4, "lr": 0.1, "seed": 0, **changes}
    with pytest.raises(ValueError, match=message):
        fit(model, loss_fn, **kwargs)


# --- networks: forward shapes ---------------------------------------------------------------------

R, C = 24, 40  # non-square, multiples of 8


@pytest.mark.parametrize("net, expected", [
    (lambda: AutoencoderNet(4), (2, 2, R, C)),
    (lambda: UNet(2, 4), (2, 2, R, C)),
    (lambda: UNet(7, 4), (2, 7, R, C)),
    (lambda: PaletteNet(5, 4), (2, 5, R, C)),
])
def test_network_shape(torch_one_thread, net, expected):
    with torch.no_grad():
        out = net()(torch.rand(2, 1, R, C))
    assert tuple(out.shape) == expected and out.dtype == torch.float32


@pytest.mark.parametrize("n_classes", [0, 3])
def test_iizuka_network_shape(torch_one_thread, n_classes):
    net = IizukaNet(4, global_size=64, n_classes=n_classes)
    with torch.no_grad():
        chroma, logits = net(torch.rand(2, 1, R, C))
    assert tuple(chroma.shape) == (2, 2, R, C)
    assert 0.0 <= float(chroma.min()) and float(chroma.max()) <= 1.0
    assert logits is None if n_classes == 0 else tuple(logits.shape) == (2, 3)
    assert net.n_classes == n_classes


def test_autoencoder_output_range(torch_one_thread):
    with torch.no_grad():
        out = AutoencoderNet(4)(torch.rand(2, 1, 16, 16) * 100)  # wild input: tanh keeps [-1, 1]
    assert float(out.abs().max()) <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_baseline_forward_shape(torch_one_thread, data, name):
    """Each baseline's network, built as `fit` builds it, on a batch of 2 at 32 px; decoded to ab."""
    model = make(name)
    model._prepare(data)
    module = model._build()
    module.eval()
    with torch.no_grad():
        ab = model._decode(module(data.L[:2]))
    assert tuple(ab.shape) == (2, 2, 32, 32)
    assert float(ab.abs().max()) <= AB_RANGE + 1e-4


# --- one training step, fit, colorize, save/load, per baseline --------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_baseline_train_step(torch_one_thread, data, labels_of, photos, name):
    if name == "iizuka":
        data = load_training_set(photos, size=32, labels=labels_of)
    model = make(name)
    model._prepare(data)
    torch.manual_seed(0)
    module = model._build()
    before = [p.detach().clone() for p in module.parameters()]
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.train()
    loss = model._loss(module, *(t[:2] for t in model._tensors(data)))
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = [not torch.equal(a, p) for a, p in zip(before, module.parameters())]
    assert all(changed), f"{changed.count(False)} parameter tensors unchanged"


@pytest.mark.parametrize("name", NAMES)
def test_baseline_fit(fitted, name):
    model = fitted[name]
    h = model.history_
    assert h["epochs_run"] == 2 and len(h["train_loss"]) == 2 and len(h["val_loss"]) == 2
    assert all(np.isfinite(h["train_loss"])) and all(np.isfinite(h["val_loss"]))
    assert (h["n_train"], h["n_val"], h["n_images"], h["n_skipped"]) == (3, 1, 4, 0)
    assert model.settings()["size"] == 32 and not model.module_.training


def test_baseline_fit_deterministic(torch_one_thread, photos):
    state = torch.get_rng_state()
    a = make("autoencoder", epochs=1).fit(photos).module_.state_dict()
    b = make("autoencoder", epochs=1).fit(photos).module_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    c = make("autoencoder", epochs=1, seed=1).fit(photos).module_.state_dict()
    assert not torch.equal(a["encoder.0.0.weight"], c["encoder.0.0.weight"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(29, 23), (9, 40), (64, 50)])  # smaller, thin, larger than size
def test_baseline_colorize(torch_one_thread, fitted, tiny_scene, name, shape):
    gray = _gray(tiny_scene, *shape)
    rgb = fitted[name].colorize(gray)
    assert rgb.shape == shape + (3,) and rgb.dtype == np.uint8
    y_out = rgb.astype(np.float64) @ LUMA_WEIGHTS  # (H, W), 0..255
    assert np.abs(y_out - np.rint(gray * 255.0)).max() <= 1.0 + 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_baseline_save_load_roundtrip(torch_one_thread, fitted, tiny_scene, tmp_path, name):
    model = fitted[name]
    model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["format"] == "deepcolor-baseline" and manifest["format_version"] == 1
    assert manifest["baseline"] == name and manifest["settings"] == model.settings()
    assert set(manifest["files"]) == ({"weights.safetensors", "arrays.npz"}
                                      if name in ("palette", "unet-classification") else {"weights.safetensors"})
    loaded = Baseline.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.settings() == model.settings()
    assert type(model).load(tmp_path / "m").name == name
    gray = _gray(tiny_scene)
    np.testing.assert_array_equal(loaded.colorize(gray), model.colorize(gray))
    L_small = luma_to_lightness(gray[:16, :16]) / 100
    np.testing.assert_array_equal(loaded.predict_ab(L_small), model.predict_ab(L_small))


@pytest.mark.parametrize("name", NAMES)
def test_baseline_load_corrupt_weights(fitted, tmp_path, name):
    fitted[name].save(tmp_path / "m")
    path = tmp_path / "m" / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"weights\.safetensors: checksum mismatch"):
        Baseline.load(tmp_path / "m")


@pytest.fixture(scope="module")
def six_photos(tmp_path_factory, tiny_scene):
    return _write_photos(tmp_path_factory.mktemp("six"), tiny_scene, sizes=[(32, 32)] * 6, seeds=list(range(6)))


@pytest.mark.parametrize("name", NAMES)
def test_baseline_learns(torch_one_thread, tiny_scene, six_photos, name):
    """On the two-region scenes each baseline's colours beat grey on an unseen scene.

    20 epochs on six 32 px scenes: chroma MSE / grey's is 0.001 to 0.1 over seeds 0 and 1.
    """
    from deepcolor.color import rgb_to_yuv

    model = make(name, epochs=20, val_fraction=0.0).fit(six_photos)
    truth = tiny_scene(32, 32, 11)
    uv_true = rgb_to_yuv(truth)[..., 1:]
    uv_pred = rgb_to_yuv(model.colorize(_gray(tiny_scene, 32, 32, 11)))[..., 1:]
    err, err_grey = np.mean((uv_pred - uv_true) ** 2), np.mean(uv_true ** 2)
    assert err < 0.5 * err_grey, (err, err_grey)


# --- U-Net classification: quantisation and the annealed mean ---------------------------------------


def test_ab_grid_index_unit():
    n = 22  # ceil(220 / 10)
    ab = np.array([[-110.0, -110.0], [-99.99, -110.0], [0.0, 0.0], [109.9, 109.9], [500.0, -500.0]])
    np.testing.assert_array_equal(ab_grid_index(ab, 10.0), [0, n, 11 * n + 11, n * n - 1, (n - 1) * n])
    np.testing.assert_allclose(grid_centres([0, 11 * n + 11], 10.0), [[-105, -105], [5, 5]])


def test_quantisation_invariant(rng):
    ab = rng.uniform(-60, 60, (13, 9, 2))
    bins = occurring_bins(ab, 10.0)
    assert np.all(np.diff(bins) > 0)  # sorted, unique
    classes = ab_to_class(ab, bins, 10.0)
    assert classes.shape == (13, 9) and classes.dtype == np.int64
    assert set(np.unique(classes)) == set(range(len(bins)))  # every kept bin occurs
    # every colour lies in its class's cell: within half a bin of the centre on each axis
    centres = grid_centres(bins, 10.0)[classes]  # (13, 9, 2)
    assert np.abs(ab - centres).max() <= 5.0 + 1e-9


def test_ab_to_class_absent_bin_goes_to_nearest():
    bins = occurring_bins(np.array([[0.0, 0.0], [50.0, 50.0]]), 10.0)
    classes = ab_to_class(np.array([[3.0, 12.0], [44.0, 61.0], [-90.0, -90.0]]), bins, 10.0)
    np.testing.assert_array_equal(classes, [0, 1, 0])


def test_annealed_mean_unit():
    centres = torch.tensor([[-50.0, 0.0], [0.0, 10.0], [30.0, -20.0]])
    logits = torch.tensor([0.2, 1.5, -0.3]).reshape(1, 3, 1, 1).expand(2, 3, 4, 5).contiguous()
    expectation = torch.softmax(logits[0, :, 0, 0], 0) @ centres  # (2,)
    out = annealed_mean(logits, centres, T=1.0)
    assert tuple(out.shape) == (2, 2, 4, 5)
    torch.testing.assert_close(out[1, :, 3, 4], expectation)
    torch.testing.assert_close(annealed_mean(logits, centres, T=1e-4)[0, :, 0, 0], centres[1])  # argmax
    # T between: between the expectation and the mode, moving towards the mode as T falls
    d = [float(torch.dist(annealed_mean(logits, centres, T)[0, :, 0, 0], centres[1])) for T in (1.0, 0.38, 0.1)]
    assert d[0] > d[1] > d[2]


def test_annealed_mean_exception():
    logits = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="T must be a positive finite number, got 0"):
        annealed_mean(logits, torch.zeros(3, 2), T=0)
    with pytest.raises(ValueError, match=r"logits must be \(N, Q, H, W\) and centres \(Q, 2\)"):
        annealed_mean(logits, torch.zeros(4, 2))


def test_unet_classification_bins(fitted, data):
    model = fitted["unet-classification"]
    ab = data.ab.permute(0, 2, 3, 1).numpy() * AB_RANGE
    np.testing.assert_array_equal(model.bins_, occurring_bins(ab, 10.0))
    assert model.centres_.shape == (len(model.bins_), 2)
    assert model.module_.head.out_channels == len(model.bins_)


# --- palette -------------------------------------------------------------------------------------


def test_fit_palette_shape(rng):
    ab = rng.uniform(-80, 80, (50, 40, 2))
    palette = fit_palette(ab, 32, seed=0)
    assert palette.shape == (32, 2) and palette.dtype == np.float32
    assert len(np.unique(palette, axis=0)) == 32
    np.testing.assert_array_equal(palette, fit_palette(ab, 32, seed=0))  # seeded
    idx = nearest_entry(ab, palette)
    assert idx.shape == (50, 40) and idx.min() >= 0 and idx.max() < 32


def test_fit_palette_few_colours():
    ab = np.array([[10.0, 20.0], [-30.0, 5.0], [10.0, 20.0], [0.0, 0.0]] * 10)  # 3 distinct colours
    palette = fit_palette(ab, 32)
    np.testing.assert_array_equal(palette, [[-30.0, 5.0], [0.0, 0.0], [10.0, 20.0]])
    np.testing.assert_array_equal(nearest_entry(ab[:4], palette), [2, 0, 2, 1])


def test_fit_palette_exception():
    with pytest.raises(ValueError, match="n_colors must be an int >= 2, got 1"):
        fit_palette(np.zeros((4, 2)), 1)
    with pytest.raises(ValueError, match="the palette needs at least one pixel, got none"):
        fit_palette(np.zeros((0, 2)), 32)


def test_palette_baseline_entries(fitted, data):
    model = fitted["palette"]
    assert model.palette_.shape == (32, 2)
    assert model.module_.head[-1].out_channels == 32
    ab = model.predict_ab(data.L[0, 0].numpy())  # palette entries only
    assert {tuple(v) for v in ab.reshape(-1, 2)} <= {tuple(v) for v in model.palette_}


# --- Iizuka: the classification loss --------------------------------------------------------------


def test_iizuka_classification_only_with_labels(torch_one_thread, photos, labels_of):
    with_labels = load_training_set(photos, size=32, labels=labels_of)
    without = load_training_set(photos, size=32)
    unknown = load_training_set(photos, size=32, labels=lambda p: None)

    model = make("iizuka")
    model._prepare(without)
    assert model.n_classes_ == 0 and model._build().classifier is None
    assert len(model._tensors(without)) == 2
    model._prepare(unknown)
    assert model.n_classes_ == 0

    model._prepare(with_labels)
    assert model.n_classes_ == 2 and len(model._tensors(with_labels)) == 3
    torch.manual_seed(0)
    module = model._build().eval()
    L, ab, labels = with_labels.L, with_labels.ab, with_labels.labels
    with torch.no_grad():
        chroma, logits = module(L)
        mse = torch.nn.functional.mse_loss(chroma, (ab + 1) / 2)
        ce = torch.nn.functional.cross_entropy(logits, labels)
        torch.testing.assert_close(model._loss(module, L, ab, labels), mse + ce / 300)
        torch.testing.assert_close(model._loss(module, L, ab), mse)  # no labels: no classification
        torch.testing.assert_close(model._loss(module, L, ab, torch.full_like(labels, -1)), mse)
        half = labels.clone()
        half[:2] = -1  # only the labelled images count
        ce_half = torch.nn.functional.cross_entropy(logits[2:], labels[2:])
        torch.testing.assert_close(model._loss(module, L, ab, half), mse + ce_half / 300)


def test_iizuka_fit_without_labels(torch_one_thread, photos):
    model = make("iizuka", epochs=1).fit(photos)
    assert model.n_classes_ == 0 and model.module_.classifier is None


def test_labels_ignored_by_other_baselines(torch_one_thread, photos):
    model = make("autoencoder", epochs=1).fit(photos, labels=lambda p: "not an int")  # never called
    assert model.history_["n_images"] == 4


# --- settings and errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, changes, message", [
    ("autoencoder", {"size": 8}, "size must be an int >= 16, got 8"),
    ("autoencoder", {"size": 36}, "size must be a multiple of 8 for autoencoder, got 36"),
    ("palette", {"size": 36}, None),  # stride 4: fine
    ("unet-regression", {"width": 1}, "width must be an int >= 2, got 1"),
    ("unet-regression", {"epochs": 0}, "epochs must be an int >= 1, got 0"),
    ("unet-regression", {"batch_size": None}, "batch_size must be an int >= 1, got None"),
    ("unet-regression", {"seed": -1}, "seed must be an int >= 0, got -1"),
    ("unet-regression", {"lr": 0.0}, r"lr must be a number in \(0.0, 1.0\], got 0.0"),
    ("unet-regression", {"val_fraction": 0.95}, r"val_fraction must be a number in \[0.0, 0.9\], got 0.95"),
    ("unet-regression", {"patience": 0}, "patience must be an int >= 1, got 0"),
    ("unet-regression", {"flip": "yes"}, "flip must be True or False, got 'yes'"),
    ("unet-classification", {"bin_size": 0.5}, r"bin_size must be a number in \[1.0, 220.0\], got 0.5"),
    ("unet-classification", {"temperature": 0}, r"temperature must be a number in \(0.0, 100.0\], got 0"),
    ("palette", {"n_colors": 1}, "n_colors must be an int >= 2, got 1"),
    ("iizuka", {"global_size": 80}, "global_size must be a multiple of 32, got 80"),
    ("iizuka", {"global_size": 32}, "global_size must be an int >= 64, got 32"),
    ("iizuka", {"alpha": -1.0}, r"alpha must be a number in \[0.0, 1000.0\], got -1.0"),
    ("iizuka", {"width": 5}, "width must be even for iizuka, got 5"),
])
def test_settings_exception(photos, name, changes, message):
    model = make(name, **{"epochs": 1, **changes})
    if message is None:
        model._check_settings()
        return
    with pytest.raises(ValueError, match=message):
        model.fit(photos)


def test_fit_training_set_size_exception(data):
    with pytest.raises(ValueError, match=r"training images are \(32, 32\), this autoencoder needs size=64"):
        make("autoencoder", size=64).fit_training_set(data)


@pytest.mark.parametrize("name", NAMES)
def test_not_fitted_exception(tmp_path, name):
    model = make(name)
    for call in (lambda: model.colorize(np.zeros((8, 8), np.float32)), lambda: model.predict_ab(np.zeros((8, 8))),
                 lambda: model.save(tmp_path / "m")):
        with pytest.raises(NotFittedError, match="is not fitted yet; call fit or load first"):
            call()


@pytest.mark.parametrize("gray, error, message", [
    (np.zeros((4, 5, 3), np.float32), ValueError, r"gray must have shape \(H, W\), got \(4, 5, 3\)"),
    (np.zeros((0, 5), np.float32), ValueError, r"gray must have shape \(H, W\), got \(0, 5\)"),
    (np.zeros((4, 5), np.uint8), TypeError, "gray must be float luminance in"),
    (np.full((4, 5), 1.5, np.float32), ValueError, r"gray must lie in \[0, 1\], got range \[1.5, 1.5\]"),
    (np.full((4, 5), -0.1, np.float32), ValueError, r"gray must lie in \[0, 1\], got range \[-0.1, -0.1\]"),
    (np.full((4, 5), np.nan, np.float32), ValueError, "gray must be finite, got NaN or infinite values"),
])
def test_colorize_exception(fitted, gray, error, message):
    with pytest.raises(error, match=message):
        fitted["autoencoder"].colorize(gray)


def test_predict_ab_exception(fitted):
    with pytest.raises(ValueError, match=r"L_small must have shape \(h, w\), got \(1, 4, 4\)"):
        fitted["autoencoder"].predict_ab(np.zeros((1, 4, 4)))


def _rewrite(model_dir, fname, data):
    """Replace a file of a saved baseline and fix its checksum in the manifest."""
    (model_dir / fname).write_bytes(data)
    manifest = json.loads((model_dir / MANIFEST).read_text())
    manifest["files"][fname] = _sha(data)
    (model_dir / MANIFEST).write_text(json.dumps(manifest))


def _edit_manifest(model_dir, edit):
    manifest = json.loads((model_dir / MANIFEST).read_text())
    edit(manifest)
    (model_dir / MANIFEST).write_text(json.dumps(manifest))


def test_load_exception(fitted, tmp_path):
    d = tmp_path / "m"
    fitted["palette"].save(d)
    with pytest.raises(ModelError, match=r"manifest.json: a 'palette' baseline, not a 'unet-regression' one"):
        UNetRegression.load(d)
    _edit_manifest(d, lambda m: m.update(baseline="zhang"))
    with pytest.raises(ModelError, match=r"manifest.json: unknown baseline 'zhang'; known: \['autoencoder'"):
        Baseline.load(d)
    _edit_manifest(d, lambda m: m.update(baseline="palette", format="deepcolor-model"))
    with pytest.raises(ModelError, match=r"not a deepcolor baseline manifest \(format='deepcolor-model'\)"):
        Baseline.load(d)
    with pytest.raises(ModelError, match="no such baseline directory"):
        Baseline.load(tmp_path / "missing")


@pytest.mark.parametrize("name, edit, message", [
    ("autoencoder", lambda m: m["settings"].update(width=8), "inconsistent baseline .RuntimeError: Error"),
    ("autoencoder", lambda m: m["settings"].update(colour="red"), "inconsistent baseline .TypeError"),
    ("autoencoder", lambda m: m["settings"].update(size=20), "inconsistent baseline .ValueError: size must be"),
    ("iizuka", lambda m: m["fitted"].update(n_classes=-2), "inconsistent baseline .ValueError: n_classes"),
    ("iizuka", lambda m: m["fitted"].update(n_classes=5), "inconsistent baseline .RuntimeError"),
    ("iizuka", lambda m: m.pop("fitted"), "inconsistent baseline .KeyError: 'fitted'"),
])
def test_load_inconsistent_manifest(fitted, tmp_path, name, edit, message):
    fitted[name].save(tmp_path / "m")
    _edit_manifest(tmp_path / "m", edit)
    with pytest.raises(ModelError, match=message):
        Baseline.load(tmp_path / "m")


@pytest.mark.parametrize("name, arrays, message", [
    ("palette", {"palette": np.zeros((33, 2), np.float32)}, r"palette must be \(K, 2\) finite floats"),
    ("palette", {"palette": np.zeros((4, 3), np.float32)}, r"palette must be \(K, 2\) finite floats"),
    ("palette", {"colours": np.zeros((4, 2), np.float32)}, "KeyError: 'palette'"),
    ("unet-classification", {"bins": np.array([3, 2, 1])}, "bins must be increasing grid indices"),
    ("unet-classification", {"bins": np.array([0, 10**6])}, r"bins must be increasing grid indices in \[0, 484\)"),
])
def test_load_inconsistent_arrays(fitted, tmp_path, name, arrays, message):
    import io

    fitted[name].save(tmp_path / "m")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _rewrite(tmp_path / "m", "arrays.npz", buf.getvalue())
    with pytest.raises(ModelError, match=message):
        Baseline.load(tmp_path / "m")


def test_load_unreadable_weights(fitted, tmp_path):
    fitted["autoencoder"].save(tmp_path / "m")
    _rewrite(tmp_path / "m", "weights.safetensors", b"not safetensors")  # checksum fixed: content is bad
    with pytest.raises(ModelError, match=r"manifest.json: inconsistent baseline \(SafetensorError"):
        Baseline.load(tmp_path / "m")


def test_load_refuses_pickled_arrays(fitted, tmp_path):
    import io

    fitted["palette"].save(tmp_path / "m")
    buf = io.BytesIO()
    np.savez(buf, palette=np.array([{"a": 1}], dtype=object))
    _rewrite(tmp_path / "m", "arrays.npz", buf.getvalue())
    with pytest.raises(ModelError, match="inconsistent baseline .ValueError: Object arrays cannot be loaded"):
        Baseline.load(tmp_path / "m")


def test_registry():
    assert set(BASELINES) == {"autoencoder", "unet-regression", "unet-classification", "palette", "iizuka"}
    for name, klass in BASELINES.items():
        assert klass.name == name and issubclass(klass, Baseline)
    assert BASELINES["palette"] is Palette and BASELINES["iizuka"] is Iizuka
    assert BASELINES["unet-classification"] is UNetClassification


def test_count_parameters():
    assert count_parameters(torch.nn.Linear(3, 2)) == 8


def test_predict_chroma_full_size(fitted):
    """The colorizer interface (issue 14): a baseline's U, V at the input's full size, no record."""
    y = np.linspace(0, 1, 50 * 37, dtype=np.float32).reshape(50, 37)
    uv, record = fitted["palette"].predict_chroma(y)
    assert record is None and uv.shape == (50, 37, 2)
    np.testing.assert_array_equal(uv, fitted["palette"].chroma(y))
