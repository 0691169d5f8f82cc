"""Progress bars (deepcolor.progress): shown on a terminal only, tqdm imported only for a bar that is shown."""

import io
import subprocess
import sys

import pytest

from deepcolor import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("quiet, tty, total", [(True, True, 10), (False, False, 10), (False, True, 1),
                                               (False, True, 0)])
def test_progress_bar_quiet(monkeypatch, quiet, tty, total):
    monkeypatch.setattr(sys, "stderr", _Terminal() if tty else io.StringIO())
    bar = progress.progress_bar(total, "work", quiet=quiet)
    assert isinstance(bar, progress.QuietBar)
    bar.update(1)
    bar.update(2)
    bar.set_postfix(loss=0.5)
    bar.set_postfix_str("step 3")
    bar.total = 7  # as a distillation sets it once known
    bar.close()
    assert bar.n == 3 and bar.total == 7
    assert sys.stderr.getvalue() == ""


@pytest.mark.parametrize("total", [2, None])
def test_progress_bar_shown_on_a_terminal(monkeypatch, total):
    from tqdm import tqdm

    monkeypatch.setattr(sys, "stderr", _Terminal())
    bar = progress.progress_bar(total, "colorize", unit="img")
    assert isinstance(bar, tqdm)
    bar.update(2)
    bar.close()
    shown = sys.stderr.getvalue()
    assert "colorize" in shown and "2" in shown and "img" in shown


def test_colorize_one_photo_imports_neither_tqdm_nor_multiprocessing(tmp_path, tiny_model_dir, tiny_scene):
    """`deepcolor colorize one.png out.png` (one process, no terminal) imports neither (55 ms of its start-up)."""
    import cv2

    src = tmp_path / "one.png"
    cv2.imwrite(str(src), cv2.cvtColor(tiny_scene(40, 56, 0), cv2.COLOR_RGB2GRAY))
    code = ("import sys; from deepcolor import cli; rc = cli.main(sys.argv[1:]); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('tqdm', 'multiprocessing')))")
    out = subprocess.run([sys.executable, "-c", code, "colorize", str(src), str(tmp_path / "out.png"), "--model",
                          str(tiny_model_dir)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"
    assert (tmp_path / "out.png").is_file()
