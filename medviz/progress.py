"""Progress lines for command-line jobs: one ``progress(done, total)`` callback the engines and trainers accept."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def printed_progress(what: str, every: int | None = None, file=None) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` that prints ``what: done/total (seconds since it was made)`` at each tenth of
    ``total`` done, or with ``every`` at each multiple of it, and at the end."""
    start, last = time.monotonic(), {"mark": 0, "end": False}

    def say(done: int, total: int) -> None:
        mark = done // every if every else 10 * done // max(total, 1)
        end = done >= total
        if mark > last["mark"] or (end and not last["end"]):
            last.update(mark=mark, end=end)
            print(f"{what}: {done}/{total} ({time.monotonic() - start:.0f} s)", file=file or sys.stdout, flush=True)

    return say
