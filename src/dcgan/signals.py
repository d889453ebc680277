"""SIGINT and SIGTERM during training: before the loop a signal aborts at once (nothing of the run
is written yet); inside it, a signal becomes a flag the loop polls, so every rank stops at the
same step and the run is saved."""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass

from .errors import DcganError


class Interrupted(DcganError):
    """A signal before training started (while loading or preparing the data): nothing of the
    run was written."""


@dataclass
class StopFlag:
    """SIGINT/SIGTERM handling. Before the loop (loading data, building the state) a signal
    aborts at once: nothing has been written yet. Once `deferred`, it becomes a flag the loop
    polls, so every rank stops at the same step and the run is saved. A second signal stops at
    once (checkpoint files are atomic, so nothing is corrupted)."""

    signal_name: str | None = None
    deferred: bool = False

    def __call__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if not self.deferred:
            error = Interrupted(
                f"interrupted by {name} before training started; nothing was written"
            )
            error.exit_code = 128 + signum
            raise error
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = name

    @contextlib.contextmanager
    def installed(self, enabled: bool = True):
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
