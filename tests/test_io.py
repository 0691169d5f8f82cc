"""Tests for deepcolor.io: finding, reading and writing images, atomic writes."""

import os

import numpy as np
import pytest
from PIL import Image

from deepcolor import io as dio
from deepcolor.io import (
    ImageError,
    atomic_write_bytes,
    atomic_write_text,
    find_images,
    read_image,
    read_rgb_u8,
    write_image,
)

H, W = 13, 9  # odd, non-square: a swapped axis shows


def _rgb(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb(h=H, w=W):
    """Gradients in all three channels: JPEG keeps them close, unlike noise."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows * 15, cols * 25, 255 - rows * 10], axis=-1).astype(np.uint8)


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- find_images -------------------------------------------------------------


def test_find_images_recursive_sorted(tmp_path):
    names = ["b.png", "a.jpg", "sub/c.tif", "sub/deeper/d.webp", "z/e.bmp", "A.jpeg"]
    for name in names:
        _touch(tmp_path / name)
    found = find_images(tmp_path)
    assert found == sorted(tmp_path / n for n in names)
    assert found == sorted(found)


def test_find_images_suffix_case_insensitive(tmp_path):
    for name in ["x.PNG", "y.JpG", "z.TIFF", "notes.txt", "model.npz", "noext", "w.png.bak"]:
        _touch(tmp_path / name)
    assert [p.name for p in find_images(tmp_path)] == ["x.PNG", "y.JpG", "z.TIFF"]


def test_find_images_skips_hidden(tmp_path):
    _touch(tmp_path / "visible.png")
    _touch(tmp_path / ".hidden.png")
    _touch(tmp_path / ".cache" / "inside.png")
    _touch(tmp_path / "sub" / ".git" / "deep.png")
    assert find_images(tmp_path) == [tmp_path / "visible.png"]


def test_find_images_hidden_root_is_searched(tmp_path):
    # Only names below the root are filtered; a root that is itself hidden is used.
    _touch(tmp_path / ".root" / "x.png")
    assert find_images(tmp_path / ".root") == [tmp_path / ".root" / "x.png"]


def test_find_images_file_root(tmp_path):
    # A file given directly comes back whatever its suffix, so reading reports it.
    for name in ["one.png", "notes.txt"]:
        path = _touch(tmp_path / name)
        assert find_images(path) == [path]
        assert find_images(str(path)) == [path]


def test_find_images_empty_folder(tmp_path):
    assert find_images(tmp_path) == []


def test_find_images_exception(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ImageError, match="no such file or folder") as info:
        find_images(missing)
    assert str(info.value) == f"{missing}: no such file or folder"
    assert info.value.path == missing


# --- read_image: formats -----------------------------------------------------

LOSSLESS = ["png", "bmp", "tiff", "webp"]


@pytest.mark.parametrize("ext", LOSSLESS + ["jpg"])
def test_read_image_rgb(tmp_path, ext):
    rgb = _smooth_rgb() if ext == "jpg" else _rgb()
    path = tmp_path / f"c.{ext}"
    save_kw = {"lossless": True} if ext == "webp" else {"quality": 95} if ext == "jpg" else {}
    Image.fromarray(rgb).save(path, **save_kw)
    out = read_image(path)
    assert out.shape == (H, W, 3)
    assert out.dtype == np.uint8
    if ext == "jpg":  # lossy: close, not exact
        assert np.abs(out.astype(int) - rgb).mean() < 4
    else:
        np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("ext", ["png", "bmp", "tiff", "jpg"])
def test_read_image_grey(tmp_path, ext):
    grey = np.tile(np.arange(0, 255, 255 // W, dtype=np.uint8)[:W], (H, 1))
    path = tmp_path / f"g.{ext}"
    Image.fromarray(grey).save(path)
    out = read_image(path)
    assert out.shape == (H, W)
    assert out.dtype == np.uint8
    if ext == "jpg":
        assert np.abs(out.astype(int) - grey).max() <= 8
    else:
        np.testing.assert_array_equal(out, grey)


def test_read_image_grey_webp_comes_back_rgb(tmp_path):
    # WebP has no grey mode: Pillow stores a grey image as RGB, so it reads back
    # as (H, W, 3) with equal channels.
    grey = np.tile(np.arange(W, dtype=np.uint8) * 20, (H, 1))
    path = tmp_path / "g.webp"
    Image.fromarray(grey).save(path, lossless=True)
    out = read_image(path)
    assert out.shape == (H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


@pytest.mark.parametrize("ext", ["png", "tiff"])
def test_read_image_16bit_grey(tmp_path, ext):
    grey16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 557).astype(np.uint16)
    grey16[0, 0], grey16[-1, -1] = 0, 65535
    path = tmp_path / f"g16.{ext}"
    Image.fromarray(grey16).save(path)
    out = read_image(path)
    assert out.dtype == np.uint16
    assert out.shape == (H, W)
    np.testing.assert_array_equal(out, grey16)


def test_read_image_16bit_grey_dark_values_preserved(tmp_path):
    # A dark 16-bit image (all values <= 255) must not be rescaled.
    grey16 = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    path = tmp_path / "dark16.png"
    Image.fromarray(grey16).save(path)
    out = read_image(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, grey16)


def test_read_image_rgba_drops_alpha(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (H, W, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = read_image(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_read_image_la_drops_alpha(tmp_path):
    la = np.random.default_rng(2).integers(0, 256, (H, W, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    out = read_image(path)
    assert out.shape == (H, W) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, la[..., 0])


@pytest.mark.parametrize("transparency", [None, 0])
def test_read_image_palette(tmp_path, transparency):
    palette_img = Image.fromarray(_rgb()).quantize(colors=8)
    path = tmp_path / "p.png"
    kw = {} if transparency is None else {"transparency": transparency}
    palette_img.save(path, **kw)
    assert Image.open(path).mode == "P"
    out = read_image(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(palette_img.convert("RGB")))


def test_read_image_bilevel(tmp_path):
    bits = _rgb()[..., 0] > 128
    path = tmp_path / "b.png"
    Image.fromarray(bits).save(path)
    assert Image.open(path).mode == "1"
    out = read_image(path)
    assert out.shape == (H, W) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.where(bits, 255, 0))


@pytest.mark.parametrize("ext", ["jpg", "tiff"])
def test_read_image_cmyk(tmp_path, ext):
    rgb = _rgb(40, 30)
    path = tmp_path / f"cmyk.{ext}"
    Image.fromarray(rgb).convert("CMYK").save(path)
    assert Image.open(path).mode == "CMYK"
    out = read_image(path)
    assert out.shape == (40, 30, 3) and out.dtype == np.uint8
    # Pillow's naive CMYK -> RGB is exact for TIFF; JPEG adds its compression loss.
    tol = 0 if ext == "tiff" else 40
    assert np.abs(out.astype(int) - rgb).mean() <= tol


def test_read_image_exif_orientation_jpeg(tmp_path):
    image = Image.fromarray(_rgb())
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "o6.jpg"
    image.save(path, exif=exif, quality=95)
    assert Image.open(path).size == (W, H)  # stored as W x H
    assert read_image(path).shape == (W, H, 3)  # shown as H x W: transposed


def test_read_image_exif_orientation_values(tmp_path):
    rgb = _rgb()
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "o6.png"  # lossless, so the pixels can be compared
    image.save(path, exif=exif)
    np.testing.assert_array_equal(read_image(path), np.rot90(rgb, k=-1))


# --- read_image: bad inputs --------------------------------------------------


def _assert_image_error(path, problem):
    with pytest.raises(ImageError) as info:
        read_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    assert problem in msg, msg
    assert info.value.path == path
    return msg


def test_read_image_exception_zero_bytes(tmp_path):
    path = _touch(tmp_path / "empty.png", b"")
    _assert_image_error(path, "empty file (0 bytes)")


@pytest.mark.parametrize("size", [(H, W), (200, 300)])
def test_read_image_exception_truncated_png(tmp_path, size):
    full = tmp_path / "full.png"
    Image.fromarray(_rgb(*size)).save(full)
    data = full.read_bytes()
    path = _touch(tmp_path / "cut.png", data[: len(data) // 2])
    _assert_image_error(path, "corrupt or truncated image (image file is truncated")


@pytest.mark.parametrize(
    "size, detail",
    [
        # Cut inside the headers: Pillow's JPEG parser stops while reading them.
        ((H, W), "(Truncated File Read)"),
        # Cut inside the entropy-coded data: the decoder reports it on load().
        ((200, 300), "(image file is truncated"),
    ],
)
def test_read_image_exception_truncated_jpeg(tmp_path, size, detail):
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # Pillow's default
    full = tmp_path / "full.jpg"
    Image.fromarray(_rgb(*size)).save(full, quality=95)
    data = full.read_bytes()
    path = _touch(tmp_path / "cut.jpg", data[: len(data) // 2])
    _assert_image_error(path, f"corrupt or truncated image {detail}")


def test_read_image_exception_text_named_png(tmp_path):
    path = _touch(tmp_path / "notes.png", b"these are notes, not pixels\n")
    _assert_image_error(path, "not an image file that Pillow can read")


def test_read_image_exception_folder_named_png(tmp_path):
    path = tmp_path / "x.png"
    path.mkdir()
    _assert_image_error(path, "is a folder, not an image file")


def test_read_image_exception_missing(tmp_path):
    _assert_image_error(tmp_path / "missing.jpg", "no such file")


def test_read_image_exception_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: root reads a chmod 000 file anyway")
    path = tmp_path / "locked.png"
    Image.fromarray(_rgb()).save(path)
    path.chmod(0)
    try:
        _assert_image_error(path, "permission denied")
    finally:
        path.chmod(0o644)


# --- read_rgb_u8 -------------------------------------------------------------


def test_read_rgb_u8_grey_replicated(tmp_path):
    grey = _rgb()[..., 0]
    path = tmp_path / "g.png"
    Image.fromarray(grey).save(path)
    out = read_rgb_u8(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_read_rgb_u8_16bit_rounded(tmp_path):
    # round(v * 255 / 65535): 0 -> 0, 128 -> 0 (0.498), 129 -> 1 (0.502),
    # 257 -> 1, 32896 -> 128, 65535 -> 255.
    values = np.array([0, 128, 129, 257, 32896, 65535], dtype=np.uint16)
    grey16 = np.resize(values, (H, W)).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(grey16).save(path)
    out = read_rgb_u8(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    expected = np.rint(grey16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(np.resize(np.array([0, 0, 1, 1, 128, 255]), (H, W)), expected)
    np.testing.assert_array_equal(out[..., 1], out[..., 0])


def test_read_rgb_u8_rgb_unchanged(tmp_path):
    rgb = _rgb()
    path = tmp_path / "c.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(read_rgb_u8(path), rgb)


# --- atomic writes -----------------------------------------------------------


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_atomic_write_bytes_writes(tmp_path):
    path = tmp_path / "new" / "sub" / "data.bin"  # parents are created
    atomic_write_bytes(path, b"\x00\x01payload")
    assert path.read_bytes() == b"\x00\x01payload"
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.bin"]


def test_atomic_write_bytes_replaces(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_atomic_write_bytes_failure_keeps_original(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    path.write_bytes(b"original")

    def boom(src, dst):
        assert os.path.basename(src).endswith(".part")  # the temporary file was written
        raise OSError("disk on fire")

    monkeypatch.setattr(dio.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"original"
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_atomic_write_bytes_interrupted_write(tmp_path, monkeypatch):
    # A failure while writing (here fsync) also leaves the old file and no .part.
    path = tmp_path / "data.bin"
    path.write_bytes(b"original")

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(dio.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"original"
    assert _leftovers(tmp_path) == []


def test_atomic_write_text_utf8(tmp_path):
    path = tmp_path / "t.txt"
    atomic_write_text(path, "Süsstrunk, ΔCF\n")
    assert path.read_bytes() == "Süsstrunk, ΔCF\n".encode("utf-8")


# --- write_image -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(H, W, 3), (H, W)])
def test_write_image_roundtrip_png(tmp_path, shape):
    image = _rgb() if len(shape) == 3 else _rgb()[..., 1]
    path = tmp_path / "out.png"
    write_image(path, image)
    np.testing.assert_array_equal(read_image(path), image)
    # RGB order kept (OpenCV writes BGR internally): compare with Pillow's view.
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert _leftovers(tmp_path) == []


def test_write_image_roundtrip_png_16bit(tmp_path):
    grey16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 601).astype(np.uint16)
    path = tmp_path / "out16.png"
    write_image(path, grey16)
    out = read_image(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, grey16)


@pytest.mark.parametrize("suffix", [".jpg", ".JPEG"])
def test_write_image_roundtrip_jpg(tmp_path, suffix):
    image = _smooth_rgb()  # smooth, so quality 95 keeps every pixel close
    path = tmp_path / f"out{suffix}"
    write_image(path, image)
    out = read_image(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() < 4
    # Channel order: the red-dominant corner stays red-dominant.
    assert out[-1, 0, 0] > out[-1, 0, 2]


def test_write_image_exception(tmp_path):
    with pytest.raises(ValueError, match=r"cannot write images with suffix '\.nope'"):
        write_image(tmp_path / "out.nope", _rgb())
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_read_image_float_tiff(tmp_path):
    from PIL import Image

    arr = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    Image.fromarray(arr, mode="F").save(tmp_path / "f.tif")
    out = read_image(tmp_path / "f.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, np.rint(arr.astype(np.float64) * 65535).astype(np.uint16))
    Image.fromarray(arr * 3, mode="F").save(tmp_path / "g.tif")
    with pytest.raises(ImageError, match=r"g\.tif: floating-point grey values must lie in \[0, 1\]"):
        read_image(tmp_path / "g.tif")


def test_image_error_pickle_roundtrip():
    import pickle

    err = pickle.loads(pickle.dumps(ImageError("/x/a.png", "bad")))
    assert str(err) == "/x/a.png: bad" and err.problem == "bad"


def test_atomic_write_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "p.bin", b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "p.bin").stat().st_mode & 0o777 == 0o644
