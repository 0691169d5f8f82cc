"""deepcolor.images and deepcolor.files: finding, reading and writing images with their metadata, atomic writes."""

import logging
import os
import struct
import zlib
from functools import cache

import numpy as np
import pytest
from PIL import Image

from deepcolor import files as dio
from deepcolor.files import atomic_write_bytes, atomic_write_text
from deepcolor.images.formats import IMAGE_EXTENSIONS, OUTPUT_FORMATS, find_images
from deepcolor.images.picture import MAX_PIXELS, ImageError, Picture
from deepcolor.images.read import read_image, read_picture, read_rgb_u8
from deepcolor.images.write import write_image, write_picture

H, W = 13, 9  # odd, non-square: a swapped axis shows


def _rgb(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb(h=H, w=W):
    """Gradients in all three channels: JPEG keeps them close, unlike noise."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows * 15, cols * 25, 255 - rows * 10], axis=-1).astype(np.uint8)


def _header(path):
    """Pillow's view of a file's header (mode, size), the file closed again."""
    with Image.open(path) as img:
        return img


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
    assert _header(path).mode == "P"
    out = read_image(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(palette_img.convert("RGB")))


def test_read_image_bilevel(tmp_path):
    bits = _rgb()[..., 0] > 128
    path = tmp_path / "b.png"
    Image.fromarray(bits).save(path)
    assert _header(path).mode == "1"
    out = read_image(path)
    assert out.shape == (H, W) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.where(bits, 255, 0))


@pytest.mark.parametrize("ext", ["jpg", "tiff"])
def test_read_image_cmyk(tmp_path, ext):
    rgb = _rgb(40, 30)
    path = tmp_path / f"cmyk.{ext}"
    Image.fromarray(rgb).convert("CMYK").save(path)
    assert _header(path).mode == "CMYK"
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
    assert _header(path).size == (W, H)  # stored as W x H
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
    msg = _assert_image_error(path, "corrupt or truncated image (truncated PNG: it ends inside its 'IDAT' chunk")
    assert "Pillow: image file is truncated" in msg


@pytest.mark.parametrize(
    "size, detail",
    [
        # Cut inside the headers: Pillow's JPEG parser stops while reading them.
        ((H, W), "Pillow: Truncated File Read)"),
        # Cut inside the entropy-coded data: the decoder reports it on load().
        ((200, 300), "Pillow: image file is truncated"),
    ],
)
def test_read_image_exception_truncated_jpeg(tmp_path, size, detail):
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # Pillow's default
    full = tmp_path / "full.jpg"
    Image.fromarray(_rgb(*size)).save(full, quality=95)
    data = full.read_bytes()
    path = _touch(tmp_path / "cut.jpg", data[: len(data) // 2])
    msg = _assert_image_error(path, detail)
    assert "corrupt or truncated image (truncated JPEG: the data end before the end-of-image marker" in msg


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

    def boom(src, dst, **kwargs):
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


# --- helpers for read_picture / write_picture ----------------------------------

MAKE, DATE = 0x010F, 0x9003  # IFD 0 Make; DateTimeOriginal in the EXIF IFD (0x8769)
ORIENTATION, EXIF_IFD = 0x0112, 0x8769


@cache
def _srgb_icc():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _grey_icc():
    icc = _srgb_icc()
    return icc[:16] + b"GRAY" + icc[20:]  # header colour space field (bytes 16:20)


def _exif(orientation=None, make="Canon"):
    exif = Image.Exif()
    exif[MAKE] = make
    if orientation is not None:
        exif[ORIENTATION] = orientation
    exif.get_ifd(EXIF_IFD)[DATE] = "2020:01:02 03:04:05"
    return exif


def _rgb16(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 65536, (h, w, 3)).astype(np.uint16)


def _alpha(dtype=np.uint8, h=H, w=W, seed=5):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, (h, w)).astype(dtype)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(samples, colour_type):
    """A 16-bit PNG built by hand (Pillow cannot write 16-bit colour): (H, W, S) uint16."""
    h, w = samples.shape[:2]
    raw = b"".join(b"\x00" + samples[r].astype(">u2").tobytes() for r in range(h))  # filter 0
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def _with_declared_size(png, width, height):
    """The PNG with its IHDR patched to declare width x height (CRC fixed)."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + _png_chunk(b"IHDR", ihdr) + png[33:]


def _picture(rgb, alpha=None, icc=None, exif=None):
    return Picture(rgb, alpha, icc, exif, "PNG", "RGBA" if alpha is not None else "RGB")


def _u8(values16):
    return np.rint(np.asarray(values16, dtype=np.float64) * 255 / 65535).astype(np.uint8)


# --- read_picture: modes -------------------------------------------------------


@pytest.mark.parametrize("ext", ["png", "tiff"])
def test_read_picture_grey(tmp_path, ext):
    grey = _rgb()[..., 0]
    path = tmp_path / f"g.{ext}"
    Image.fromarray(grey).save(path)
    pic = read_picture(path)
    np.testing.assert_array_equal(pic.pixels, grey)
    assert pic.pixels.dtype == np.uint8 and pic.bit_depth == 8 and pic.is_grey
    assert pic.alpha is None and not pic.has_alpha
    assert (pic.mode, pic.format) == ("L", ext.upper())
    assert pic.icc_profile is None and pic.exif is None
    assert pic.pixels.flags.writeable


@pytest.mark.parametrize("ext", ["png", "tiff"])
def test_read_picture_grey_16bit(tmp_path, ext):
    grey16 = _rgb16()[..., 0]
    path = tmp_path / f"g16.{ext}"
    Image.fromarray(grey16).save(path)
    pic = read_picture(path)
    assert pic.pixels.dtype == np.uint16 and pic.bit_depth == 16 and pic.is_grey
    assert pic.mode.startswith("I;16") and pic.alpha is None
    np.testing.assert_array_equal(pic.pixels, grey16)


def test_read_picture_grey_16bit_transparent_value(tmp_path):
    grey16 = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 300
    path = tmp_path / "t16.png"
    Image.fromarray(grey16).save(path, transparency=600)  # tRNS: value 600 is transparent
    pic = read_picture(path)
    np.testing.assert_array_equal(pic.pixels, grey16)
    np.testing.assert_array_equal(pic.alpha, np.where(grey16 == 600, 0, 65535))
    assert pic.alpha.dtype == np.uint16


@pytest.mark.parametrize("ext", ["png", "tiff"])
@pytest.mark.parametrize("channels", [3, 4])
def test_read_picture_rgb_16bit(tmp_path, ext, channels):
    # Written by OpenCV (BGR order): Pillow alone would reduce these to 8 bits.
    import cv2

    rgba16 = np.dstack([_rgb16(), _alpha(np.uint16)])[..., :channels]
    path = tmp_path / f"c16.{ext}"
    bgra = np.dstack([rgba16[..., 2::-1], rgba16[..., 3:]])
    assert cv2.imwrite(str(path), bgra)
    pic = read_picture(path)
    assert pic.pixels.dtype == np.uint16 and pic.bit_depth == 16 and not pic.is_grey
    assert pic.mode == ("RGB", "RGBA")[channels - 3]
    np.testing.assert_array_equal(pic.pixels, rgba16[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(pic.alpha, rgba16[..., 3])
        assert pic.alpha.dtype == np.uint16
    else:
        assert pic.alpha is None
    # read_image and read_rgb_u8 see the same 16-bit colour
    np.testing.assert_array_equal(read_image(path), rgba16[..., :3])
    np.testing.assert_array_equal(read_rgb_u8(path), _u8(rgba16[..., :3]))


def test_read_picture_grey_alpha_16bit(tmp_path):
    la16 = np.dstack([_rgb16()[..., 0], _alpha(np.uint16)])
    path = _touch(tmp_path / "la16.png", _png16(la16, colour_type=4))
    pic = read_picture(path)
    assert pic.is_grey and pic.pixels.dtype == np.uint16
    np.testing.assert_array_equal(pic.pixels, la16[..., 0])
    np.testing.assert_array_equal(pic.alpha, la16[..., 1])


@pytest.mark.parametrize("ext", ["png", "webp", "tiff"])
def test_read_picture_rgba(tmp_path, ext):
    rgb, alpha = _rgb(), _alpha()
    path = tmp_path / f"rgba.{ext}"
    kw = {"lossless": True, "exact": True} if ext == "webp" else {}
    Image.fromarray(np.dstack([rgb, alpha])).save(path, **kw)
    pic = read_picture(path)
    assert pic.mode == "RGBA" and pic.has_alpha and pic.alpha.dtype == np.uint8
    np.testing.assert_array_equal(pic.pixels, rgb)
    np.testing.assert_array_equal(pic.alpha, alpha)


def test_read_picture_la(tmp_path):
    la = np.dstack([_rgb()[..., 0], _alpha()])
    path = tmp_path / "la.png"
    Image.fromarray(la).save(path)
    pic = read_picture(path)
    assert pic.mode == "LA" and pic.is_grey
    np.testing.assert_array_equal(pic.pixels, la[..., 0])
    np.testing.assert_array_equal(pic.alpha, la[..., 1])


@pytest.mark.parametrize("transparency", [None, 0])
def test_read_picture_palette(tmp_path, transparency):
    palette_img = Image.fromarray(_rgb()).quantize(colors=8)
    path = tmp_path / "p.png"
    palette_img.save(path, **({} if transparency is None else {"transparency": transparency}))
    pic = read_picture(path)
    assert pic.mode == "P" and pic.pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(pic.pixels, np.asarray(palette_img.convert("RGB")))
    if transparency is None:
        assert pic.alpha is None
    else:
        expected = np.where(np.asarray(palette_img) == transparency, 0, 255)
        assert 0 < (expected == 0).sum() < H * W
        np.testing.assert_array_equal(pic.alpha, expected)


def test_read_picture_cmyk_jpeg(tmp_path):
    rgb = _smooth_rgb(40, 30)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    pic = read_picture(path)
    assert (pic.mode, pic.format) == ("CMYK", "JPEG")
    assert pic.pixels.shape == (40, 30, 3) and pic.pixels.dtype == np.uint8 and pic.alpha is None
    assert np.abs(pic.pixels.astype(int) - rgb).mean() < 4


def test_read_picture_icc_exif_orientation(tmp_path):
    rgb = _smooth_rgb()
    path = tmp_path / "o6.jpg"
    Image.fromarray(rgb).save(path, quality=95, icc_profile=_srgb_icc(), exif=_exif(orientation=6))
    pic = read_picture(path)
    assert pic.pixels.shape == (W, H, 3)  # stored H x W, shown rotated
    assert pic.icc_profile == _srgb_icc() and pic.icc_is_rgb and pic.icc_colour_space == "RGB"
    exif = Image.Exif()
    exif.load(pic.exif)
    assert pic.exif.startswith(b"Exif\x00\x00")
    assert exif[MAKE] == "Canon" and exif[ORIENTATION] == 1
    assert exif.get_ifd(EXIF_IFD)[DATE] == "2020:01:02 03:04:05"


def test_read_picture_tiff_exif_without_layout_tags(tmp_path):
    path = tmp_path / "o.tiff"
    Image.fromarray(_rgb()).save(path, exif=_exif(orientation=8))
    pic = read_picture(path)
    np.testing.assert_array_equal(pic.pixels, np.rot90(_rgb()))  # 8: 90 degrees counter-clockwise
    exif = Image.Exif()
    exif.load(pic.exif)
    assert exif[MAKE] == "Canon" and exif[ORIENTATION] == 1
    assert not {256, 257, 258, 273, 279} & set(exif)  # width, length, bits, strips


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_picture_orientation_16bit_matches_pillow(tmp_path, orientation):
    # The 16-bit colour path (OpenCV, NumPy transposes) against Pillow's exif_transpose.
    rgb = _rgb()
    path8, path16 = tmp_path / "o8.png", tmp_path / "o16.png"
    Image.fromarray(rgb).save(path8, exif=_exif(orientation))
    write_picture(path16, rgb.astype(np.uint16) * 257, _picture(rgb, exif=_exif(orientation).tobytes()))
    pic8, pic16 = read_picture(path8), read_picture(path16)
    assert pic16.bit_depth == 16
    np.testing.assert_array_equal(pic16.pixels, pic8.pixels.astype(np.uint16) * 257)
    exif = Image.Exif()
    exif.load(pic16.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "Canon"


# --- read_picture: the pixel limit ---------------------------------------------


def test_read_picture_exception_declared_size_too_large(tmp_path, monkeypatch):
    from PIL import ImageFile

    png = (tmp_path / "small.png")
    Image.fromarray(_rgb()).save(png)
    path = _touch(tmp_path / "bomb.png", _with_declared_size(png.read_bytes(), 100_000, 100_000))

    def no_decoding(self):
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    expected = (f"{path}: image of 100000 x 100000 = 10,000,000,000 pixels exceeds the limit of "
                f"{MAX_PIXELS:,} pixels (setting max_pixels, --max-pixels)")
    for read in (read_picture, read_image, read_rgb_u8):  # the default limit applies to all
        with pytest.raises(ImageError) as info:
            read(path)
        assert str(info.value) == expected
    for limit in (10**10, None):  # within the limit: decoding starts (stopped here by the patch)
        with pytest.raises(AssertionError, match="decoded before"):
            read_picture(path, max_pixels=limit)


def test_read_picture_max_pixels(tmp_path):
    path = tmp_path / "c.png"
    Image.fromarray(_rgb()).save(path)
    with pytest.raises(ImageError) as info:
        read_picture(path, max_pixels=H * W - 1)
    assert str(info.value) == (f"{path}: image of {W} x {H} = {H * W:,} pixels exceeds the limit of "
                               f"{H * W - 1:,} pixels (setting max_pixels, --max-pixels)")
    with pytest.raises(ImageError, match="exceeds the limit"):
        read_image(path, max_pixels=10)
    np.testing.assert_array_equal(read_picture(path, max_pixels=H * W).pixels, _rgb())
    np.testing.assert_array_equal(read_picture(path, max_pixels=None).pixels, _rgb())


def test_read_picture_max_pixels_overrides_pillow_limit(tmp_path, monkeypatch):
    # Pillow's own check (error above twice Image.MAX_IMAGE_PIXELS) must not
    # contradict ours, and its global setting comes back unchanged.
    import warnings

    path = tmp_path / "c.png"
    Image.fromarray(_rgb(40, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        assert read_picture(path, max_pixels=None).pixels.shape == (40, 30, 3)
        assert read_picture(path).pixels.shape == (40, 30, 3)
    assert Image.MAX_IMAGE_PIXELS == 100
    with pytest.raises(Image.DecompressionBombError):  # other callers keep Pillow's check
        Image.open(path)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "100"])
def test_read_picture_exception_max_pixels_value(tmp_path, bad):
    with pytest.raises(ValueError, match=r"max_pixels must be a positive int or None \(no limit\), got "):
        read_picture(tmp_path / "any.png", max_pixels=bad)


# --- read_picture: bad inputs --------------------------------------------------


def _assert_picture_error(path, problem):
    with pytest.raises(ImageError) as info:
        read_picture(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and problem in msg, msg
    assert info.value.path == path


def test_read_picture_exception_files(tmp_path):
    _assert_picture_error(tmp_path / "missing.png", "no such file")
    (tmp_path / "dir.png").mkdir()
    _assert_picture_error(tmp_path / "dir.png", "is a folder, not an image file")
    _assert_picture_error(_touch(tmp_path / "empty.png", b""), "empty file (0 bytes)")
    _assert_picture_error(_touch(tmp_path / "text.png", b"not pixels\n"), "not an image file that Pillow can read")


def test_read_picture_exception_truncated(tmp_path):
    import cv2

    Image.fromarray(_rgb(200, 300)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    _assert_picture_error(_touch(tmp_path / "cut.png", data[: len(data) // 2]),
                          "corrupt or truncated image (truncated PNG: it ends inside its 'IDAT' chunk")
    # 16-bit colour: decoded by OpenCV
    data = cv2.imencode(".png", _rgb16(200, 300))[1].tobytes()
    _assert_picture_error(_touch(tmp_path / "cut16.png", data[: len(data) // 2]),
                          "corrupt or truncated image (OpenCV could not decode its 16-bit samples)")


def test_read_picture_exception_permission(tmp_path, monkeypatch):
    # Simulated (root reads a chmod 000 file anyway): Pillow's open raises PermissionError.
    path = tmp_path / "locked.png"
    Image.fromarray(_rgb()).save(path)

    def locked(fp, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(fp))

    monkeypatch.setattr(Image, "open", locked)
    _assert_picture_error(path, "permission denied")


def test_read_picture_exception_mode(tmp_path, monkeypatch):
    path = tmp_path / "p.png"
    Image.fromarray(_rgb()).quantize(colors=4).save(path)

    def no_conversion(self, mode=None, *args, **kwargs):
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")

    monkeypatch.setattr(Image.Image, "convert", no_conversion)
    _assert_picture_error(path, "unsupported image mode 'P' (conversion from P to RGB not supported)")


def test_read_picture_exception_int32_range(tmp_path):
    path = tmp_path / "i.tiff"
    Image.fromarray(np.full((H, W), -3, dtype=np.int32)).save(path)
    _assert_picture_error(path, "32-bit integer grey values outside 0..65535 (range -3..-3)")


def test_read_picture_no_global_limit_left(tmp_path):
    # The old reader set Image.MAX_IMAGE_PIXELS for good; read_picture leaves it as found.
    before = Image.MAX_IMAGE_PIXELS
    Image.fromarray(_rgb()).save(tmp_path / "c.png")
    read_picture(tmp_path / "c.png")
    with pytest.raises(ImageError):
        read_picture(tmp_path / "missing.png")
    assert Image.MAX_IMAGE_PIXELS == before


# --- Picture -------------------------------------------------------------------


def test_picture_properties():
    pic = Picture(_rgb16(), _alpha(np.uint16), _srgb_icc(), None, "PNG", "RGBA")
    assert (pic.bit_depth, pic.is_grey, pic.has_alpha) == (16, False, True)
    assert (pic.icc_colour_space, pic.icc_is_rgb) == ("RGB", True)
    pic = Picture(_rgb()[..., 0], None, _grey_icc(), None, "JPEG", "L")
    assert (pic.bit_depth, pic.is_grey, pic.has_alpha) == (8, True, False)
    assert (pic.icc_colour_space, pic.icc_is_rgb) == ("GRAY", False)
    pic = Picture(_rgb(), None, None, None, "BMP", "RGB")
    assert (pic.icc_colour_space, pic.icc_is_rgb) == (None, False)


def test_output_formats():
    assert set(OUTPUT_FORMATS) == set(IMAGE_EXTENSIONS)
    assert {s for s, f in OUTPUT_FORMATS.items() if 16 in f.bit_depths} == {".png", ".tif", ".tiff"}
    assert {s for s, f in OUTPUT_FORMATS.items() if f.alpha} == {".png", ".tif", ".tiff", ".webp"}
    assert {s for s, f in OUTPUT_FORMATS.items() if not f.icc or not f.exif} == {".bmp"}
    with pytest.raises(TypeError):
        OUTPUT_FORMATS[".gif"] = OUTPUT_FORMATS[".png"]  # read-only


# --- write_picture -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".TIFF", ".bmp", ".webp", ".jpg", ".jpeg"])
def test_write_picture_roundtrip_8bit(tmp_path, suffix):
    rgb = _smooth_rgb() if suffix in (".jpg", ".jpeg") else _rgb()
    path = tmp_path / f"out{suffix}"
    write_picture(path, rgb)
    pic = read_picture(path)
    assert pic.format == OUTPUT_FORMATS[suffix.lower()].name
    assert pic.pixels.dtype == np.uint8 and pic.alpha is None and pic.exif is None and pic.icc_profile is None
    if OUTPUT_FORMATS[suffix.lower()].lossless:
        np.testing.assert_array_equal(pic.pixels, rgb)
    else:
        assert np.abs(pic.pixels.astype(int) - rgb).mean() < 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_write_picture_roundtrip_16bit(tmp_path, suffix):
    import cv2
    import tifffile

    rgb16 = _rgb16()
    path = tmp_path / f"out{suffix}"
    write_picture(path, rgb16)
    pic = read_picture(path)
    assert pic.bit_depth == 16 and pic.mode == "RGB"
    np.testing.assert_array_equal(pic.pixels, rgb16)
    # independent decoders agree
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1], rgb16)
    if suffix == ".tif":
        np.testing.assert_array_equal(tifffile.imread(path), rgb16)


def test_write_picture_tiff_layout(tmp_path):
    # Checked with tifffile: several strips, deflate, predictor, alpha as extra sample.
    import tifffile

    rgb16, alpha = _rgb16(300, 201), _alpha(np.uint16, 300, 201)
    path = tmp_path / "big.tif"
    write_picture(path, rgb16, _picture(rgb16, alpha))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert (page.photometric, page.compression, page.predictor) == (2, 8, 2)
        assert page.extrasamples == (2,) and page.bitspersample == 16
        assert len(page.dataoffsets) > 1
        data = page.asarray()
    np.testing.assert_array_equal(data, np.dstack([rgb16, alpha]))


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".webp"])
def test_write_picture_16bit_rounded(tmp_path, suffix):
    # round(v * 255 / 65535): 0 -> 0, 128 -> 0, 129 -> 1, 257 -> 1, 32896 -> 128, 65535 -> 255
    values = np.array([0, 128, 129, 257, 32896, 65535], dtype=np.uint16)
    assert _u8(values).tolist() == [0, 0, 1, 1, 128, 255]
    rgb16 = np.resize(values, (H, W, 3)).astype(np.uint16)
    if suffix == ".jpg":  # lossy: a smooth image, 16-bit values between the 8-bit ones
        rgb16 = np.minimum(_smooth_rgb().astype(np.uint32) * 257 + 100, 65535).astype(np.uint16)
    path = tmp_path / f"out{suffix}"
    write_picture(path, rgb16)
    pic = read_picture(path)
    assert pic.pixels.dtype == np.uint8
    if suffix == ".jpg":
        np.testing.assert_array_equal(_u8(rgb16), _smooth_rgb())
        assert np.abs(pic.pixels.astype(int) - _smooth_rgb()).mean() < 4
    else:
        np.testing.assert_array_equal(pic.pixels, _u8(rgb16))


@pytest.mark.parametrize("suffix, dtype", [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint8),
                                           (".tif", np.uint16), (".webp", np.uint8)])
def test_write_picture_alpha(tmp_path, suffix, dtype):
    rgb = _rgb() if dtype == np.uint8 else _rgb16()
    alpha = _alpha(dtype)
    path = tmp_path / f"out{suffix}"
    write_picture(path, rgb, _picture(rgb, alpha))
    pic = read_picture(path)
    assert pic.pixels.dtype == dtype and pic.alpha.dtype == dtype
    np.testing.assert_array_equal(pic.pixels, rgb)
    np.testing.assert_array_equal(pic.alpha, alpha)
    with Image.open(path) as img:  # Pillow sees an alpha channel too
        assert img.mode == "RGBA"


def test_write_picture_alpha_rescaled(tmp_path):
    alpha8, alpha16 = _alpha(np.uint8), _alpha(np.uint16)
    write_picture(tmp_path / "a.png", _rgb16(), _picture(_rgb(), alpha8))
    np.testing.assert_array_equal(read_picture(tmp_path / "a.png").alpha, alpha8.astype(np.uint16) * 257)
    write_picture(tmp_path / "b.png", _rgb(), _picture(_rgb16(), alpha16))
    np.testing.assert_array_equal(read_picture(tmp_path / "b.png").alpha, _u8(alpha16))
    write_picture(tmp_path / "c.webp", _rgb16(), _picture(_rgb16(), alpha16))  # WebP: 8 bits
    pic = read_picture(tmp_path / "c.webp")
    np.testing.assert_array_equal(pic.pixels, _u8(_rgb16()))
    np.testing.assert_array_equal(pic.alpha, _u8(alpha16))


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_write_picture_alpha_dropped(tmp_path, caplog, suffix):
    path = tmp_path / f"out{suffix}"
    with caplog.at_level(logging.WARNING, logger="deepcolor.images"):
        write_picture(path, _smooth_rgb(), _picture(_smooth_rgb(), _alpha()))
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: {OUTPUT_FORMATS[suffix].name} holds no alpha channel; the transparency of the input is dropped"]
    pic = read_picture(path)
    assert pic.alpha is None and pic.mode == "RGB"


@pytest.mark.parametrize("suffix, dtype", [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint8),
                                           (".tif", np.uint16), (".jpg", np.uint8), (".webp", np.uint8)])
def test_write_picture_icc(tmp_path, suffix, dtype):
    rgb = _rgb() if dtype == np.uint8 else _rgb16()
    path = tmp_path / f"out{suffix}"
    write_picture(path, rgb, _picture(rgb, icc=_srgb_icc()))
    with Image.open(path) as img:
        assert img.info["icc_profile"] == _srgb_icc()
    assert read_picture(path).icc_profile == _srgb_icc()


@pytest.mark.parametrize("icc, suffix, message", [
    (_grey_icc, ".png", "the input's ICC profile describes 'GRAY', not RGB; dropped"),
    (_srgb_icc, ".bmp", "BMP holds no ICC profile; the input's profile is dropped"),
])
def test_write_picture_icc_dropped(tmp_path, caplog, icc, suffix, message):
    path = tmp_path / f"out{suffix}"
    with caplog.at_level(logging.DEBUG, logger="deepcolor.images"):
        write_picture(path, _rgb(), _picture(_rgb(), icc=icc()))
    assert f"{path}: {message}" in [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    with Image.open(path) as img:
        assert "icc_profile" not in img.info


@pytest.mark.parametrize("suffix, dtype", [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint8),
                                           (".tif", np.uint16), (".jpg", np.uint8), (".webp", np.uint8)])
def test_write_picture_exif(tmp_path, suffix, dtype):
    # EXIF read from a rotated JPEG: Make and DateTimeOriginal survive, Orientation 1.
    src = tmp_path / "src.jpg"
    Image.fromarray(_smooth_rgb()).save(src, exif=_exif(orientation=6), quality=95)
    source = read_picture(src)
    rgb = source.pixels if dtype == np.uint8 else source.pixels.astype(np.uint16) * 257
    path = tmp_path / f"out{suffix}"
    write_picture(path, rgb, source)
    with Image.open(path) as img:
        exif = img.getexif()
        assert exif[MAKE] == "Canon" and exif[ORIENTATION] == 1
        assert exif.get_ifd(EXIF_IFD)[DATE] == "2020:01:02 03:04:05"
    assert read_picture(path).pixels.shape == (W, H, 3)  # not rotated a second time


def test_write_picture_exif_bmp_dropped(tmp_path, caplog):
    path = tmp_path / "out.bmp"
    with caplog.at_level(logging.DEBUG, logger="deepcolor.images"):
        write_picture(path, _rgb(), _picture(_rgb(), exif=_exif().tobytes()))
    assert f"{path}: BMP holds no EXIF data; the input's EXIF is dropped" in [r.getMessage() for r in caplog.records]


def test_write_picture_exif_from_tiff(tmp_path):
    # A TIFF's own layout tags (strips, bits per sample) are not carried into a JPEG's EXIF.
    src = tmp_path / "src.tif"
    Image.fromarray(_smooth_rgb()).save(src, exif=_exif())
    path = tmp_path / "out.jpg"
    write_picture(path, _smooth_rgb(), read_picture(src))
    with Image.open(path) as img:
        exif = img.getexif()
    assert exif[MAKE] == "Canon"
    assert not {256, 257, 258, 273, 279} & set(exif)


def test_write_picture_exif_too_long_for_jpeg(tmp_path, caplog):
    exif = _exif(make="x" * 70_000).tobytes()
    source = _picture(_smooth_rgb(), exif=exif)
    path = tmp_path / "out.jpg"
    with caplog.at_level(logging.WARNING, logger="deepcolor.images"):
        write_picture(path, _smooth_rgb(), source)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: EXIF data of {len(exif)} bytes do not fit in a JPEG APP1 segment; dropped"]
    assert read_picture(path).exif is None
    write_picture(tmp_path / "out.png", _smooth_rgb(), source)  # PNG holds it
    with Image.open(tmp_path / "out.png") as img:
        assert img.getexif()[MAKE] == "x" * 70_000


def test_read_picture_odd_exif(tmp_path):
    # A SHORT tag (ResolutionUnit) stored as text: Pillow reads it but cannot
    # write it back, so it is left out; the rest of the EXIF is kept.
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    ifd[MAKE] = "Canon"
    ifd[296] = "inch"
    ifd.tagtype[296] = 2  # ASCII
    raw = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd.tobytes(8)
    path = tmp_path / "odd.jpg"
    Image.fromarray(_smooth_rgb()).save(path, exif=raw, quality=95)
    pic = read_picture(path)
    exif = Image.Exif()
    exif.load(pic.exif)
    assert exif[MAKE] == "Canon" and 296 not in exif
    write_picture(tmp_path / "out.tif", pic.pixels, _picture(pic.pixels, exif=raw))  # the odd tag dropped here too
    with Image.open(tmp_path / "out.tif") as img:
        assert img.getexif()[MAKE] == "Canon"


def test_write_picture_bare_exif(tmp_path):
    # EXIF given without the "Exif\0\0" header of JPEG's APP1 is accepted too.
    bare = _exif().tobytes()[6:]
    assert bare[:4] in (b"II*\x00", b"MM\x00*")
    write_picture(tmp_path / "out.jpg", _smooth_rgb(), _picture(_smooth_rgb(), exif=bare))
    with Image.open(tmp_path / "out.jpg") as img:
        assert img.getexif()[MAKE] == "Canon"


def test_write_picture_roundtrip_everything(tmp_path):
    # read -> write -> read keeps 16 bits, alpha, ICC and EXIF.
    import cv2

    rgba16 = np.dstack([_rgb16(), _alpha(np.uint16)])
    cv2.imwrite(str(tmp_path / "src.png"), np.dstack([rgba16[..., 2::-1], rgba16[..., 3]]))
    first = _picture(rgba16[..., :3], rgba16[..., 3], _srgb_icc(), _exif(orientation=1).tobytes())
    write_picture(tmp_path / "a.tif", first.pixels, first)
    second = read_picture(tmp_path / "a.tif")
    write_picture(tmp_path / "b.png", second.pixels, second)
    third = read_picture(tmp_path / "b.png")
    for pic in (second, third):
        np.testing.assert_array_equal(pic.pixels, rgba16[..., :3])
        np.testing.assert_array_equal(pic.alpha, rgba16[..., 3])
        assert pic.icc_profile == _srgb_icc()
        exif = Image.Exif()
        exif.load(pic.exif)
        assert exif[MAKE] == "Canon" and exif.get_ifd(EXIF_IFD)[DATE] == "2020:01:02 03:04:05"


@pytest.mark.parametrize("rgb, source, error, match", [
    (_rgb()[..., 0], None, ValueError, r"rgb must have shape \(H, W, 3\), got \(13, 9\)"),
    (np.dstack([_rgb(), _alpha()]), None, ValueError, r"rgb must have shape \(H, W, 3\), got \(13, 9, 4\)"),
    (np.zeros((0, 9, 3), np.uint8), None, ValueError, r"rgb must have shape \(H, W, 3\), got \(0, 9, 3\)"),
    (_rgb().astype(np.float32), None, TypeError, "rgb dtype must be uint8 or uint16, got float32"),
    (_rgb(), _rgb(), TypeError, "source must be a Picture or None, got ndarray"),
    (_rgb(), _picture(_rgb(), _alpha(np.uint8, W, H)), ValueError,
     r"alpha of shape \(9, 13\) does not match rgb of shape \(13, 9, 3\)"),
    (_rgb(), _picture(_rgb(), _alpha().astype(np.int32)), TypeError, "alpha dtype must be uint8 or uint16, got int32"),
])
def test_write_picture_exception(tmp_path, rgb, source, error, match):
    with pytest.raises(error, match=match):
        write_picture(tmp_path / "out.png", rgb, source)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.nope", "out.gif", "out"])
def test_write_picture_exception_suffix(tmp_path, name):
    with pytest.raises(ValueError, match=r"cannot write images with suffix '(\.nope|\.gif|)'; use one of"):
        write_picture(tmp_path / name, _rgb())
    assert list(tmp_path.iterdir()) == []


def test_write_picture_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"original")

    def boom(src, dst, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(dio.os, "replace", boom)
    for suffix in (".png", ".tif", ".jpg"):
        target = path.with_suffix(suffix)
        with pytest.raises(OSError, match="disk on fire"):
            write_picture(target, _rgb16(), _picture(_rgb16(), _alpha()))
    assert path.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no .part, no new file


def test_write_picture_exception_encoder(tmp_path, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imencode", lambda *args, **kwargs: (False, None))
    with pytest.raises(ValueError, match="OpenCV could not encode a uint8 "):
        write_picture(tmp_path / "out.jpg", _smooth_rgb())
    assert list(tmp_path.iterdir()) == []


def test_write_picture_jpeg_same_pixels_as_pillow(tmp_path):
    # OpenCV's encoder at quality 95 against Pillow's (the encoder used before): the same
    # libjpeg-turbo settings, so the decoded pixels are identical.
    rgb = np.clip(_smooth_rgb(61, 47).astype(int) + np.random.default_rng(1).integers(-20, 21, (61, 47, 3)),
                  0, 255).astype(np.uint8)
    write_picture(tmp_path / "ours.jpg", rgb)
    Image.fromarray(rgb).save(tmp_path / "pillow.jpg", quality=95)
    np.testing.assert_array_equal(read_image(tmp_path / "ours.jpg"), read_image(tmp_path / "pillow.jpg"))


def test_write_picture_jpeg_segments_after_app0(tmp_path):
    source = _picture(_smooth_rgb(), icc=_srgb_icc(), exif=_exif().tobytes())
    path = tmp_path / "out.jpg"
    write_picture(path, _smooth_rgb(), source)
    data = path.read_bytes()
    assert data[:4] == b"\xff\xd8\xff\xe0"  # SOI, then JFIF's APP0 first
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    assert data[app0_end:app0_end + 2] == b"\xff\xe1" and data[app0_end + 4:app0_end + 10] == b"Exif\x00\x00"
    assert b"ICC_PROFILE\x00\x01\x01" in data


def test_write_picture_jpeg_icc_split(tmp_path, monkeypatch):
    # A profile longer than one APP2 segment is split into numbered segments (ICC.1 annex B.4).
    from deepcolor.images import write as dwrite

    icc = _srgb_icc()
    monkeypatch.setattr(dwrite, "ICC_CHUNK", 100)
    path = tmp_path / "out.jpg"
    write_picture(path, _smooth_rgb(), _picture(_smooth_rgb(), icc=icc))
    parts = -(-len(icc) // 100)
    assert parts > 1 and path.read_bytes().count(b"ICC_PROFILE\x00") == parts
    with Image.open(path) as img:
        assert img.info["icc_profile"] == icc
    assert read_picture(path).icc_profile == icc


def test_write_picture_jpeg_icc_too_long(tmp_path, monkeypatch, caplog):
    from deepcolor.images import write as dwrite

    icc = _srgb_icc()
    monkeypatch.setattr(dwrite, "ICC_CHUNK", 1)  # more than 255 segments
    assert len(icc) > 255
    path = tmp_path / "out.jpg"
    with caplog.at_level(logging.WARNING, logger="deepcolor.images"):
        write_picture(path, _smooth_rgb(), _picture(_smooth_rgb(), icc=icc))
    assert [r.getMessage() for r in caplog.records] == [
        f"ICC profile of {len(icc)} bytes does not fit in 255 JPEG APP2 segments; dropped"]
    assert read_picture(path).icc_profile is None


def test_write_picture_exception_jpeg_without_soi(tmp_path, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imencode", lambda *args, **kwargs: (True, np.frombuffer(b"\x00\x01xx", np.uint8)))
    with pytest.raises(ValueError, match="OpenCV wrote a JPEG that does not start with SOI"):
        write_picture(tmp_path / "out.jpg", _smooth_rgb(), _picture(_smooth_rgb(), icc=_srgb_icc()))
    assert list(tmp_path.iterdir()) == []


def test_encode_image_exception_encoder(monkeypatch):
    import cv2

    from deepcolor.images.write import encode_image

    monkeypatch.setattr(cv2, "imencode", lambda *args, **kwargs: (False, None))
    with pytest.raises(ValueError, match=r"OpenCV could not encode an image as \.jpg"):
        encode_image(_rgb(), ".JPG")

    def broken(*args, **kwargs):
        raise cv2.error("no encoder")

    monkeypatch.setattr(cv2, "imencode", broken)
    with pytest.raises(ValueError, match=r"OpenCV could not encode a uint8 \(13, 9\) image as \.bmp: no encoder"):
        encode_image(_rgb()[..., 0], ".bmp")
