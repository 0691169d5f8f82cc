"""The README's first command: `make demo` colorizes sample photos with the bundled model and prints PSNR."""

import logging
import re

from deepcolor import demo


def test_demo_bundled_model_beats_grey(tmp_path, capsys, torch_one_thread):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert demo.main(["--work", str(tmp_path)]) == 0
    finally:  # the CLI steps point the root logger at the captured stderr: put it back
        root.handlers[:] = handlers
        root.setLevel(level)
    out = capsys.readouterr().out
    found = re.search(r"demo: PSNR over (\d+) sample photos colorized by the bundled model: ([\d.]+) dB, "
                      r"grey input ([\d.]+) dB", out)
    assert found, out
    n, model, grey = int(found[1]), float(found[2]), float(found[3])
    assert n == len(demo.REFERENCES) + len(demo.TESTS)
    assert model > grey
    assert len(list((tmp_path / "bundled" / "colorized").glob("*.png"))) == n
    # issue 18: the trivial baselines beside the model's, and a contact sheet to look at
    assert re.search(r"grey input [\d.]+ dB, the truths' mean colour [\d.]+ dB; ", out), out
    page = tmp_path / "bundled" / "colorized" / "index.html"
    assert f"to look at: {page}" in out
    assert len(set(re.findall(r"<img src='([^']+)'", page.read_text()))) == 3 * n  # input, output, truth
