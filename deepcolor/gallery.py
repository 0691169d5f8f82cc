"""`deepcolor colorize --gallery`: a contact sheet of a colorized folder, ``OUT/index.html``.

One row per photo: small thumbnails of the grey input, deepcolor's output and,
with a truth folder, the true colour photo, side by side, each linked to its
full-size file, so a batch of thousands can be reviewed by eye. Thumbnails
are JPEG files of at most `THUMB_SIDE` px in ``OUT/.gallery`` (a hidden
folder: `find_images` skips it, so ``deepcolor evaluate --pred OUT`` and a
later colorize of OUT never take them for photos); a rerun makes only the
thumbnails whose photo changed. The page is static HTML, with lazy loading
images and no script.
"""

import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
from PIL import Image

from deepcolor.evaluate import pair_files
from deepcolor.files import atomic_write_bytes, atomic_write_text
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_rgb_u8
from deepcolor.metrics import psnr
from deepcolor.parallel import run

GALLERY_DIR = ".gallery"
PAGE = "index.html"
THUMB_SIDE = 160  # px, the longest side of a thumbnail
THUMB_QUALITY = 80  # JPEG quality of the thumbnails: 3 to 8 kB each
N_WORST = 10  # at most this many rows (one in ten) labelled "worst" (lowest PSNR against the truth)


@dataclass
class Row:
    """One photo of the contact sheet: where its files are and what was measured."""

    name: str  # the output's path relative to OUT, without suffix
    source: str
    output: str = ""
    truth: str = ""
    status: str = "done"  # "done", "skipped" (an existing output) or "failed"
    message: str = ""
    thumbs: dict = None  # role ("input", "output", "truth") -> (thumbnail path, height, width)
    psnr: float = None
    label: str = ""  # "worst" or "failed"


def thumbnail(rgb, side=THUMB_SIDE):
    """A copy of `rgb` (H, W, 3) uint8 shrunk by area averaging so its longest side is at most `side` px.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    side : int
        Longest side of the result in px, positive. Smaller images are kept
        at their size (never enlarged).

    Returns
    -------
    small : ndarray of shape (h, w, 3), uint8
        ``max(h, w) <= side``, aspect ratio kept (each side at least 1 px).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    if not isinstance(side, (int, np.integer)) or side < 1:
        raise ValueError(f"side must be a positive int, got {side!r}")
    scale = side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb.copy()
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))  # (w, h) for OpenCV
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _write_thumb(rgb, path):
    small = thumbnail(rgb)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the thumbnail")
    atomic_write_bytes(path, buf.tobytes())
    return small.shape[:2]


def _fresh(thumb, source):
    """The thumbnail exists and is not older than its photo."""
    try:
        return thumb.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def _thumb_size(path):
    with Image.open(path) as img:
        return img.height, img.width


def _make_row_thumbs(files, thumbs, with_psnr):
    """Thumbnails of one row's files ({role: path} -> {role: thumbnail path}) and the output's PSNR.

    Returns (sizes {role: (h, w)}, psnr or None, message); a file that cannot
    be read is named in the message and its thumbnail left out.
    """
    sizes, images, problems = {}, {}, []
    need_psnr = with_psnr and "truth" in files and "output" in files
    for role, path in files.items():
        thumb = Path(thumbs[role])
        try:
            fresh = _fresh(thumb, Path(path))
            if not fresh or (need_psnr and role != "input"):
                images[role] = read_rgb_u8(path)
            sizes[role] = _thumb_size(thumb) if fresh else _write_thumb(images[role], thumb)
        except (ImageError, ValueError, OSError) as exc:
            problems.append(str(exc) if isinstance(exc, ImageError) else f"{path}: {exc}")
    score = None
    if need_psnr and "truth" in images and "output" in images:
        truth, out = images["truth"], images["output"]
        if truth.shape == out.shape:
            score = psnr(truth, out)
        else:
            problems.append(f"{files['truth']}: size {truth.shape[0]}x{truth.shape[1]} differs from the output's "
                            f"{out.shape[0]}x{out.shape[1]}; no PSNR")
    return sizes, score, "; ".join(problems)


def _href(path, base):
    """URL of `path` relative to the folder `base`, each path segment percent-encoded."""
    rel = os.path.relpath(Path(path).absolute(), Path(base).absolute())
    return quote(Path(rel).as_posix())


def _truth_pairs(out_dir, outputs, truth_dir):
    """{output path: truth path} for the outputs under `out_dir`, paired as `deepcolor evaluate` pairs them."""
    pairing = pair_files(Path(truth_dir), Path(out_dir))
    wanted = {Path(o).absolute() for o in outputs}
    return {str(Path(pred).absolute()): str(truth) for _, truth, pred, _ in pairing.pairs
            if Path(pred).absolute() in wanted}


def write_gallery(out_dir, outcomes, truth_dir=None, jobs=1, title="deepcolor"):
    """Write the contact sheet ``out_dir/index.html`` of a colorize run and its thumbnails.

    Parameters
    ----------
    out_dir : str or Path
        The run's output folder (colorize's OUT, or the folder of a single
        output file); the page and ``.gallery/`` go there.
    outcomes : list of deepcolor.colorize.Outcome
        The run's files: "done" and "skipped" ones (an existing output) get a
        row with their thumbnails, "failed" ones a row with the message.
    truth_dir : str or Path, optional
        True colour photos, paired with the outputs by relative path, then by
        unique file name (`deepcolor.evaluate.pair_files`): their thumbnails
        are added and each output's PSNR against its truth shown; the
        `N_WORST` lowest are labelled "worst" and shown first.
    jobs : int
        Worker processes making the thumbnails (`deepcolor.parallel.run`).
    title : str
        The page's heading.

    Returns
    -------
    page : Path
        ``out_dir/index.html``.
    """
    out_dir = Path(out_dir)
    thumb_dir = out_dir / GALLERY_DIR
    rows = []
    for o in outcomes:
        if o.status == "failed" or not o.output:
            rows.append(Row(name=str(o.source), source=o.source, status="failed", message=o.message,
                            label="failed"))
            continue
        rel = os.path.relpath(Path(o.output).absolute(), out_dir.absolute())
        rows.append(Row(name=Path(rel).with_suffix("").as_posix(), source=o.source, output=o.output,
                        status=o.status))
    truths = _truth_pairs(out_dir, [r.output for r in rows if r.output], truth_dir) if truth_dir else {}
    tasks, todo = [], [r for r in rows if r.output]
    for r in todo:
        r.truth = truths.get(str(Path(r.output).absolute()), "")
        files = {"input": r.source, "output": r.output, **({"truth": r.truth} if r.truth else {})}
        rel = Path(os.path.relpath(Path(r.output).absolute(), out_dir.absolute())).as_posix()
        r.thumbs = {role: thumb_dir / f"{rel}.{role}.jpg" for role in files}  # a.png, a.jpg: no clash
        tasks.append((files, {k: str(v) for k, v in r.thumbs.items()}, truth_dir is not None))
    for r, (sizes, score, message) in zip(todo, run(_make_row_thumbs, tasks, jobs)):
        r.thumbs = {role: (r.thumbs[role], *sizes[role]) for role in sizes}
        r.psnr, r.message = score, message
    scored = sorted((r for r in rows if r.psnr is not None and math.isfinite(r.psnr)), key=lambda r: r.psnr)
    for r in scored[:min(N_WORST, len(scored) // 10)]:
        r.label = "worst"
    rows.sort(key=lambda r: (r.status != "failed", r.name))
    page = out_dir / PAGE
    atomic_write_text(page, render_page(rows, out_dir, title, truth_dir))
    return page


LEGEND = """<p>Each row: the grey input, deepcolor's output{truth}, as thumbnails of at most {side} px;
click a thumbnail for the full-size file. Rows are in the order of the output folder's names{order}.</p>
<dl><dt>worst</dt><dd>with a truth, one of the photos whose output is furthest from it (lowest PSNR; one
photo in ten, at most {n_worst}): the first place to look for mistakes, shown again at the top.</dd>
<dt>failed</dt><dd>the photo could not be colorized: the message says why (also in
deepcolor-colorize.jsonl); failed photos are listed first.</dd>
<dt>existing</dt><dd>the output was already there and was kept (rerun with --overwrite to redo it).</dd>
<dt>PSNR</dt><dd>of the output against the truth, in dB, on RGB at full size (uint8,
data_range=255, as the paper reports it); higher is closer. 20 dB is far, 30 dB close.</dd></dl>"""

CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}
.row{display:flex;align-items:flex-start;gap:6px;padding:6px 0;border-bottom:1px solid #ddd}
.name{width:16em;font-size:13px;word-break:break-all}.label{font-weight:bold;color:#b00}
figure{margin:0;font-size:11px;text-align:center;min-width:60px}img{display:block;background:#eee}
dt{font-weight:bold;float:left;width:5em}dd{margin-left:6em}"""


def _cell(role, thumb, target, out_dir):
    path, height, width = thumb
    e = html.escape
    return (f"<figure><a href='{e(_href(target, out_dir))}'><img src='{e(_href(path, out_dir))}' "
            f"width='{width}' height='{height}' loading='lazy' alt='{e(role)}'></a>"
            f"<figcaption>{e(role)}</figcaption></figure>")


def _row_html(r, out_dir):
    e = html.escape
    label = {"worst": "worst", "failed": "failed"}.get(r.label, "existing" if r.status == "skipped" else "")
    info = [f"<span class='label'>{e(label)}</span>"] if label else []
    if r.psnr is not None:
        info.append(f"PSNR {r.psnr:.2f} dB")
    if r.message:
        info.append(f"<span class='label'>{e(r.message)}</span>")
    cells = "".join(_cell(role, r.thumbs[role], target, out_dir)
                    for role, target in (("input", r.source), ("output", r.output), ("truth", r.truth))
                    if r.thumbs and role in r.thumbs)
    return f"<div class='row'><div class='name'>{e(r.name)}<br>{'<br>'.join(info)}</div>{cells}</div>"


def render_page(rows, out_dir, title, truth_dir=None):
    """The contact sheet's HTML: legend, the "worst" rows first, then every row in order."""
    e = html.escape
    n_failed = sum(r.status == "failed" for r in rows)
    worst = sorted((r for r in rows if r.label == "worst"), key=lambda r: r.psnr)
    legend = LEGEND.format(truth=" and the truth" if truth_dir else "", side=THUMB_SIDE, n_worst=N_WORST,
                           order=", after the failed and the worst ones" if worst else ", after the failed ones")
    scores = [r.psnr for r in rows if r.psnr is not None]
    mean = f"; mean PSNR {np.mean(scores):.2f} dB over {len(scores)} photos" if scores else ""
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             f"<p>{len(rows) - n_failed} photos, {n_failed} failed{e(mean)}"
             + (f"; truth: {e(str(truth_dir))}" if truth_dir else "") + "</p>", legend]
    if worst:
        parts.append(f"<h2>Worst {len(worst)} by PSNR</h2>")
        parts += [_row_html(r, out_dir) for r in worst]
        parts.append("<h2>All photos</h2>")
    parts += [_row_html(r, out_dir) for r in rows]
    parts.append("</body></html>\n")
    return "\n".join(parts)
