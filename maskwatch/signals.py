"""Stop signals: SIGTERM and SIGHUP end a run the way Ctrl-C does.

A service manager, ``kill``, ``timeout`` or a closed terminal stops a process with SIGTERM or SIGHUP, whose
default action kills it on the spot: outputs half-written, a training epoch lost without a word. Turned
into ``KeyboardInterrupt``, they take the path Ctrl-C takes, where every command already finalises its
outputs and says how to go on.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

Handler = Callable[[int, Any], None]


def raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals(handler: Handler = raise_interrupt) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP call ``handler`` (by default: raise ``KeyboardInterrupt``);
    the previous handlers come back after it. Outside the main thread, which alone may install handlers
    (a library caller's worker thread), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = [signal.SIGTERM, signal.SIGHUP] if hasattr(signal, "SIGHUP") else [signal.SIGTERM]
    previous = {sig: signal.signal(sig, handler) for sig in handled}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
