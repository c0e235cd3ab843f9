"""Private memory of this process: RssAnon from /proc/self/status (Linux), now and at its peak.

RssAnon counts anonymous pages, what the process itself allocated; the page cache of a
memory-mapped checkpoint is shared, reclaimable, and not counted.
"""
from __future__ import annotations

import threading
import time


def private_bytes() -> int:
    """RssAnon of this process in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError("/proc/self/status has no RssAnon line; this measurement needs Linux")


class PeakPrivate:
    """The highest RssAnon seen while the `with` block runs, polled by a thread (torch releases the
    GIL in its ops, so the thread samples during them)."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s, self.peak = interval_s, private_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, private_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakPrivate":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, private_bytes())
