"""Progress bars on a terminal: one per artifact being written or read.

Work never reports progress itself: it registers a counter (a callable that
returns the bytes done so far) for as long as it runs, and the display polls
the counters a few times a second. The hot loops stay as they are, and with
stderr not a terminal (cron, systemd, pipes, tests) nothing is drawn at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

POLL = 0.2  # seconds between reads of the counters


class Meter:
    """Where long work registers its counters. This one draws nothing."""

    @contextmanager
    def track(self, label: str, total: int | None, counter: Callable[[], int]) -> Iterator[None]:
        yield


NO_PROGRESS = Meter()


class TerminalMeter(Meter):
    """Draws the registered counters with rich, on stderr, until closed."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.filesize import decimal
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.table import Column
        from rich.text import Text

        class Bytes(ProgressColumn):
            def render(self, task: Any) -> Text:
                done = decimal(int(task.completed))
                return Text(done if task.total is None else f"{done} / {decimal(int(task.total))}", no_wrap=True)

        # Log lines written while bars are up go through rich (redirect_stderr),
        # above the bars; stdout is left alone: it carries --json output.
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=24), Bytes(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True, redirect_stdout=False,
        )
        self._counters: dict[Any, Callable[[], int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="vigil-progress", daemon=True)

    def __enter__(self) -> TerminalMeter:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._progress.stop()

    @contextmanager
    def track(self, label: str, total: int | None, counter: Callable[[], int]) -> Iterator[None]:
        task = self._progress.add_task(label, total=total)
        with self._lock:
            self._counters[task] = counter
        try:
            yield
        finally:
            with self._lock:
                del self._counters[task]
            self._progress.remove_task(task)

    def _poll(self) -> None:
        while not self._stop.wait(POLL):
            with self._lock:
                for task, counter in self._counters.items():
                    try:
                        self._progress.update(task, completed=counter())
                    except Exception:  # noqa: BLE001 - a display must never break the work it shows
                        pass


@contextmanager
def meter(enabled: bool) -> Iterator[Meter]:
    """A TerminalMeter while the block runs when enabled, else one that draws nothing."""
    if not enabled:
        yield NO_PROGRESS
        return
    with TerminalMeter() as m:
        yield m
