"""Progress reporting for transfers: callbacks, and a ready-made terminal bar.

Every transfer method (``upload_file``, ``download_file``, and ``put_object`` when it goes
multipart) takes ``progress=``:

* a callable ``progress(done, total)``: ``done`` is the number of bytes transferred so far,
  ``total`` the size when known (``None`` for a stream of unknown length until it ends).
  ``done`` only grows: bytes read to compute a hash are never counted, and a part or range
  that is sent again after a failure counts only once (the retry reports nothing until it
  gets past what the failed attempt had reported). Calls come from the transfer's worker
  threads, one at a time (never concurrently), so the callback needs no lock of its own but
  should return quickly;
* ``True``: draw a progress bar on the terminal with ``tqdm`` (``pip install
  s3func[progress]``);
* a :class:`ProgressBar`, to choose the bar's options.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError

__all__ = ["ProgressBar", "ProgressCallback", "ProgressLike", "Tracker", "make_tracker"]

#: ``progress(done, total)``: bytes transferred so far, and the total when known.
ProgressCallback = Callable[[int, int | None], None]
#: What ``progress=`` accepts.
ProgressLike = ProgressCallback | bool | None


class ProgressBar:
    """A ``tqdm`` progress bar usable as a ``progress`` callback (needs ``s3func[progress]``).

    Example::

        from s3func.progress import ProgressBar

        with ProgressBar(desc="backup.tar") as bar:
            session.upload_file("backup.tar", "/data/backup.tar", progress=bar)

    Args:
        desc: The label shown before the bar.
        **options: More ``tqdm`` options (``leave``, ``file``, ``disable``...).

    Raises:
        ConfigurationError: tqdm is not installed.
    """

    def __init__(self, desc: str | None = None, **options: Any) -> None:
        try:
            tqdm = importlib.import_module("tqdm.auto").tqdm
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "progress bars need tqdm: pip install 's3func[progress]'"
            ) from exc
        options.setdefault("unit", "B")
        options.setdefault("unit_scale", True)
        options.setdefault("unit_divisor", 1024)
        options.setdefault("dynamic_ncols", True)
        self._bar = tqdm(desc=desc, total=None, **options)
        self._done = 0

    def __call__(self, done: int, total: int | None) -> None:
        """Move the bar to ``done`` bytes of ``total``."""
        bar = self._bar
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        if done > self._done:
            bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        """Finish the bar (leaves it on screen unless ``leave=False`` was given)."""
        self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tracker:
    """Counts the bytes of one transfer and reports them to a callback, serially.

    Transfer code reports bytes with :meth:`add` (bytes that can never be re-sent, such as
    a downloaded chunk written out) or through a :class:`Meter` per part (bytes of one
    attempt that a retry may send again).

    Attributes:
        done: Bytes counted so far.
        total: The transfer size, when known.
    """

    __slots__ = ("_callback", "_lock", "done", "total")

    def __init__(self, callback: ProgressCallback | None, total: int | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.done = 0
        self.total = total

    def add(self, n: int) -> None:
        """Count ``n`` more bytes and report."""
        if n <= 0:
            return
        with self._lock:
            self.done += n
            if self._callback is not None:
                self._callback(self.done, self.total)

    def finish(self, total: int) -> None:
        """Set the final total (for streams of unknown length) and report once more."""
        with self._lock:
            self.total = total
            if self._callback is not None:
                self._callback(self.done, total)

    def meter(self) -> Meter:
        """Return a :class:`Meter` for one part or range."""
        return Meter(self)


class Meter:
    """The bytes of one part: only what goes past the best earlier attempt is counted."""

    __slots__ = ("_high", "_sent", "_tracker")

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._sent = 0
        self._high = 0

    def restart(self) -> None:
        """A new attempt starts from the beginning of the part."""
        self._sent = 0

    def sent(self, n: int) -> None:
        """``n`` more bytes of the current attempt went out."""
        self._sent += n
        if self._sent > self._high:
            self._tracker.add(self._sent - self._high)
            self._high = self._sent


class _NullContext:
    def close(self) -> None:
        pass


def make_tracker(progress: ProgressLike, total: int | None, *, desc: str | None = None) -> tuple[
    Tracker, Callable[[], None]
]:
    """Build the tracker for one transfer from a ``progress=`` argument.

    Returns:
        The tracker and a function to call when the transfer ends (closes a bar we made).

    Raises:
        ConfigurationError: ``progress`` is neither a callable, a bool nor None, or is
            ``True`` without tqdm installed.
    """
    if progress is None or progress is False:
        return Tracker(None, total), _NullContext().close
    if progress is True:
        bar = ProgressBar(desc=desc)
        return Tracker(bar, total), bar.close
    if not callable(progress):
        raise ConfigurationError("progress must be a callable(done, total), True or None")
    return Tracker(progress, total), _NullContext().close
