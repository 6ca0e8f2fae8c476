"""`serve`'s uvicorn server: a SIGTERM ends the process with status 0 once it has stopped.

uvicorn (>= 0.29) catches SIGTERM, shuts down gracefully, then raises the signal again so
that the process dies of it (status -15 / 143). A scheduler stopped on purpose, by systemd
or Kubernetes, has stopped cleanly: exit status 0 says so, and supervisors that treat
143 as a failure stop restarting it in a loop. SIGINT (Ctrl+C) is still raised again, as a
terminal expects.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn


class CleanExitServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        caught: list[int] = []

        def handle(sig: int, frame: object) -> None:
            caught.append(sig)
            self.handle_exit(sig, None)

        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, handle) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if signal.SIGINT in caught:
            signal.raise_signal(signal.SIGINT)
