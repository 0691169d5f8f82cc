"""Progress bars on stderr, quiet when stderr is not a terminal, when asked, or for a single item.

tqdm is imported only for a bar that is shown: importing it costs about 30 ms
(its version lookup reads the package metadata), a tenth of what ``deepcolor
colorize one.png out.png`` takes beyond Python and OpenCV.
"""

import sys


class QuietBar:
    """What `progress_bar` returns when nothing is shown: the bar's methods that deepcolor calls, counting only."""

    def __init__(self, total=None):
        self.total = total
        self.n = 0

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def close(self):
        pass


def progress_bar(total, desc, unit="it", quiet=False):
    """A tqdm bar on stderr, or a `QuietBar` when `quiet`, when stderr is not a terminal, or for one item or none.

    A bar for a single item says nothing the command's final line does not.
    `total` may be None (unknown, as a distillation's steps are at first).
    """
    if quiet or not sys.stderr.isatty() or (total is not None and total <= 1):
        return QuietBar(total)
    from tqdm import tqdm  # lazy: see the module's docstring; not tqdm.auto, which imports asyncio

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
