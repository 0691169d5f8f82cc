"""deepcolor.images.png: PNG files deflated in segments on threads, checked by Pillow, OpenCV and zlib."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from deepcolor.images import png
from deepcolor.images.png import adler32_combine, encode_png

H, W = 13, 9  # odd, non-square: a swapped axis shows


def _image(shape, dtype, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def _chunks(data):
    """(type, payload) of every chunk of a PNG, each chunk's CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, out = 8, []
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        kind, payload = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        assert struct.unpack(">I", data[at + 8 + n:at + 12 + n])[0] == zlib.crc32(kind + payload), kind
        out.append((kind, payload))
        at += 12 + n
    return out


def _opencv(data):
    """OpenCV's decode of PNG bytes, in RGB(A) order."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = np.concatenate([arr[..., 2::-1], arr[..., 3:]], axis=2)
    return arr


@pytest.fixture
def small_segments(monkeypatch):
    """Segments of a few rows, so that a 13-row image has several."""
    monkeypatch.setattr(png, "SEGMENT_BYTES", 40)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(H, W), (H, W, 1), (H, W, 2), (H, W, 3), (H, W, 4), (1, 1, 3)])
def test_encode_png_roundtrip(shape, dtype, small_segments):
    image = _image(shape, dtype)
    data = encode_png(image)
    ihdr = _chunks(data)[0][1]
    assert struct.unpack(">IIBB", ihdr[:10]) == (shape[1], shape[0], 8 * np.dtype(dtype).itemsize,
                                                 {1: 0, 2: 4, 3: 2, 4: 6}[shape[2] if len(shape) == 3 else 1])
    expected = image.reshape(shape[:2]) if len(shape) == 2 or shape[2] == 1 else image
    if shape[-1:] != (2,):  # OpenCV reads grey+alpha as BGRA
        np.testing.assert_array_equal(_opencv(data), expected)
    if dtype == np.uint8:  # Pillow reads 16-bit colour at 8 bits
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), expected)


def test_encode_png_stream_unit(small_segments):
    # The IDAT payloads form one zlib stream (zlib checks its Adler-32) of up-filtered rows:
    # each row is type byte 2, then its bytes minus the row above's, modulo 256.
    image = _image((H, W, 3), np.uint8)
    idats = [payload for kind, payload in _chunks(encode_png(image)) if kind == b"IDAT"]
    assert len(idats) > 3  # several segments
    raw = np.frombuffer(zlib.decompress(b"".join(idats)), np.uint8).reshape(H, 1 + W * 3)
    assert (raw[:, 0] == 2).all()
    rows = image.reshape(H, W * 3).astype(np.int16)
    expected = np.vstack([rows[:1], rows[1:] - rows[:-1]]) % 256
    np.testing.assert_array_equal(raw[:, 1:], expected)


def test_encode_png_16bit_big_endian(small_segments):
    image = np.array([[0x0102, 0xA0B0]], np.uint16)
    idats = [payload for kind, payload in _chunks(encode_png(image)) if kind == b"IDAT"]
    assert zlib.decompress(b"".join(idats)) == b"\x02\x01\x02\xa0\xb0"


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_encode_png_invariant_threads(threads, small_segments):
    image = _image((H, W, 3), np.uint16)
    assert encode_png(image, threads=threads) == encode_png(image, threads=1)


def test_encode_png_default_threads_opencv(monkeypatch, small_segments):
    # The default follows OpenCV's thread count; the bytes do not change with it.
    image = _image((H, W, 3), np.uint8)
    one = encode_png(image, threads=1)
    monkeypatch.setattr(cv2, "getNumThreads", lambda: 3)
    assert encode_png(image) == one


def test_encode_png_one_segment_for_small_images():
    kinds = [kind for kind, _ in _chunks(encode_png(_image((H, W, 3), np.uint8)))]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_encode_png_metadata_chunks():
    icc, exif = b"profile bytes" * 20, b"II*\x00\x08\x00\x00\x00\x00\x00"
    chunks = _chunks(encode_png(_image((H, W, 3), np.uint8), icc=icc, exif=exif))
    assert [kind for kind, _ in chunks[:3]] == [b"IHDR", b"iCCP", b"eXIf"]  # before the pixels
    assert chunks[1][1].startswith(b"icc\x00\x00") and zlib.decompress(chunks[1][1][5:]) == icc
    assert chunks[2][1] == exif


def test_adler32_combine_unit():
    rng = np.random.default_rng(3)
    for n1, n2 in [(0, 0), (0, 7), (5, 0), (1, 1), (1000, 70000), (100000, 3)]:
        first, second = rng.integers(0, 256, n1, np.uint8).tobytes(), rng.integers(0, 256, n2, np.uint8).tobytes()
        combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), n2)
        assert combined == zlib.adler32(first + second), (n1, n2)


@pytest.mark.parametrize("pixels, error, match", [
    (np.zeros((H, W), np.float32), TypeError, "PNG samples must be uint8 or uint16, got float32"),
    (np.zeros((H, W), np.int16), TypeError, "PNG samples must be uint8 or uint16, got int16"),
    (np.zeros((H, W, 5), np.uint8), ValueError, r"got \(13, 9, 5\)"),
    (np.zeros(H, np.uint8), ValueError, r"got \(13,\)"),
    (np.zeros((0, W, 3), np.uint8), ValueError, r"with C in 1\.\.4 and H, W >= 1, got \(0, 9, 3\)"),
])
def test_encode_png_exception(pixels, error, match):
    with pytest.raises(error, match=match):
        encode_png(pixels)
