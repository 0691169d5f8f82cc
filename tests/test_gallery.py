"""Tests for the contact sheet of `deepcolor colorize --gallery` (deepcolor.gallery, issue 18).

The page is checked with the standard library's HTML parser: every image and
link resolves to a file, thumbnails are small, the truth column appears with
--truth, failures and the "worst" label are shown and explained.
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from deepcolor.color import rgb_to_gray_u8
from deepcolor.colorize import Outcome
from deepcolor.gallery import GALLERY_DIR, N_WORST, THUMB_SIDE, thumbnail, write_gallery


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread (speed on 2-core CI)."""


def _save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


class _Page(HTMLParser):
    """Collects the page's images (src, width, height), links (href) and text."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(page):
    parser = _Page()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def _resolve(page, url):
    assert "://" not in url and not url.startswith("/"), url  # relative: the folder can be moved with its inputs
    return (page.parent / unquote(url)).resolve()


def _check_links(page):
    """Every image and link of the page resolves; thumbnails are small JPEGs of the declared size."""
    parsed = _parse(page)
    for url in parsed.links:
        assert _resolve(page, url).is_file(), url
    for img in parsed.images:
        path = _resolve(page, img["src"])
        assert path.is_file(), img["src"]
        assert path.parent.resolve().is_relative_to((page.parent / GALLERY_DIR).resolve())
        with Image.open(path) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) <= THUMB_SIDE
            assert (thumb.width, thumb.height) == (int(img["width"]), int(img["height"]))
        assert path.stat().st_size < 16 * 1024
        assert img.get("loading") == "lazy" and img.get("alt")
    return parsed


def test_colorize_gallery_unit(run, tmp_path, tiny_model_dir, tiny_scene):
    """--gallery writes OUT/index.html whose thumbnails and links all resolve; bad files are listed."""
    truths = {"a": tiny_scene(200, 330, 1), "sub/b c": tiny_scene(45, 37, 2)}  # one larger than a thumbnail
    for stem, rgb in truths.items():
        _save(tmp_path / "in" / f"{stem}.png", rgb_to_gray_u8(rgb))
        _save(tmp_path / "truth" / f"{Path(stem).name}.png", rgb)  # flat: paired by file name
    (tmp_path / "in" / "broken.png").write_text("not an image")
    out = tmp_path / "out dir"
    rc, _, err = run("colorize", tmp_path / "in", out, "--model", tiny_model_dir, "--gallery",
                     "--truth", tmp_path / "truth", "-q")
    assert rc == 1, err  # the broken file
    assert f"gallery: {out / 'index.html'}" in err
    parsed = _check_links(out / "index.html")
    text = " ".join(parsed.text)
    assert len(parsed.images) == 6  # input, output, truth for each of the two photos
    assert {Path(unquote(h)).name for h in parsed.links} == {"a.png", "b c.png"}
    assert sum(Path(unquote(h)).parent.name == "truth" for h in parsed.links) == 2
    with Image.open(out / GALLERY_DIR / "a.png.output.jpg") as thumb:
        assert thumb.size == (THUMB_SIDE, 97)  # 330 x 200 shrunk, aspect kept
    assert "broken.png" in text and "not an image file that Pillow can read" in text
    assert len(re.findall(r"(?<!mean )PSNR \d+\.\d\d dB", text)) == 2  # one per photo
    for term in ("worst", "failed", "existing", "PSNR"):  # the labels are explained on the page
        assert f"{term}" in text
    # the thumbnails are hidden from the tools that read OUT
    rc, _, err = run("evaluate", "--truth", tmp_path / "truth", "--pred", out)
    assert rc == 0, err


def test_colorize_gallery_without_truth(run, tmp_path, tiny_model_dir, tiny_scene):
    _save(tmp_path / "in" / "x.png", rgb_to_gray_u8(tiny_scene(38, 47, 3)))
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_model_dir, "--gallery", "-q")
    assert rc == 0, err
    parsed = _check_links(tmp_path / "out" / "index.html")
    assert [i["alt"] for i in parsed.images] == ["input", "output"]
    assert not re.search(r"PSNR \d", " ".join(parsed.text))  # nothing measured without a truth


def test_colorize_exception_truth_without_gallery(run, tmp_path, tiny_model_dir, tiny_scene):
    _save(tmp_path / "in" / "x.png", rgb_to_gray_u8(tiny_scene(38, 47, 3)))
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_model_dir,
                     "--truth", tmp_path / "in")
    assert rc == 2
    assert "ERROR: --truth is shown in the gallery only: add --gallery" in err
    assert not (tmp_path / "out").exists()


def test_colorize_exception_truth_missing(run, tmp_path, tiny_model_dir, tiny_scene):
    _save(tmp_path / "in" / "x.png", rgb_to_gray_u8(tiny_scene(38, 47, 3)))
    rc, _, err = run("colorize", tmp_path / "in", tmp_path / "out", "--model", tiny_model_dir, "--gallery",
                     "--truth", tmp_path / "nope")
    assert rc == 2
    assert f"ERROR: --truth {tmp_path / 'nope'}: no such folder" in err


def test_write_gallery_worst_label(tmp_path, rng):
    """With a truth, the lowest-PSNR tenth (at most N_WORST) is labelled "worst" and listed first."""
    outcomes = []
    for i in range(12):
        truth = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
        noise = rng.integers(-i - 1, i + 2, truth.shape)  # photo 11 is furthest from its truth
        _save(tmp_path / "truth" / f"p{i:02d}.png", truth)
        _save(tmp_path / "in" / f"p{i:02d}.png", rgb_to_gray_u8(truth))
        out = _save(tmp_path / "out" / f"p{i:02d}.png", np.clip(truth + noise, 0, 255).astype(np.uint8))
        outcomes.append(Outcome(str(tmp_path / "in" / f"p{i:02d}.png"), str(out), "done"))
    page = write_gallery(tmp_path / "out", outcomes, truth_dir=tmp_path / "truth")
    html = page.read_text()
    assert html.count("class='label'>worst<") == 2 * min(N_WORST, 12 // 10)  # its row twice: top and in order
    worst = html.index("<h2>Worst 1 by PSNR</h2>")
    assert html.index("p11", worst) < html.index("<h2>All photos</h2>")
    _check_links(page)
    # a rerun keeps the thumbnails that are up to date
    stamp = (tmp_path / "out" / GALLERY_DIR / "p00.png.input.jpg").stat().st_mtime_ns
    write_gallery(tmp_path / "out", outcomes, truth_dir=tmp_path / "truth")
    assert (tmp_path / "out" / GALLERY_DIR / "p00.png.input.jpg").stat().st_mtime_ns == stamp


def test_thumbnail_shape():
    small = thumbnail(np.zeros((300, 1000, 3), np.uint8))
    assert small.shape == (48, THUMB_SIDE, 3) and small.dtype == np.uint8
    assert thumbnail(np.zeros((9, 13, 3), np.uint8)).shape == (9, 13, 3)  # never enlarged


def test_thumbnail_invariant_constant():
    image = np.full((301, 999, 3), (10, 200, 30), np.uint8)
    assert (thumbnail(image, 31) == (10, 200, 30)).all()


@pytest.mark.parametrize("image, side, match", [
    (np.zeros((9, 13), np.uint8), 160, r"rgb must be a uint8 \(H, W, 3\) image, got uint8 \(9, 13\)"),
    (np.zeros((9, 13, 3), np.float32), 160, "got float32"),
    (np.zeros((9, 13, 3), np.uint8), 0, "side must be a positive int, got 0"),
])
def test_thumbnail_exception(image, side, match):
    with pytest.raises(ValueError, match=match):
        thumbnail(image, side)
