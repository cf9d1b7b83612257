"""Progress of long work: per stage, how much is done of how much (files read, texts embedded with the
rate, points written).

The work (the ingest package, rebuild.py, migration, evaluation) reports to a ``Progress``; where it goes is
chosen by whoever runs it:

* ``BarProgress``: rich progress bars, for a terminal (`legal-rag ingest`, `rebuild`, `migrate`, `eval`);
* ``LineProgress``: plain lines at a bounded rate (one per stage every ``interval`` seconds, and one
  when the stage ends): for output that is not a terminal, ``--quiet``, and the Dagster run log
  (``for_run``), so a long run shows its counts in the UI without flooding the event log;
* ``Progress`` itself does nothing.

`legal-rag ingest` executes the Dagster run in its own process: ``showing(sink)`` makes the assets of
that run report to the command's sink as well as to the run log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any, TypeVar

T = TypeVar("T")

def log_interval() -> float:
    """Seconds between two progress lines of one stage (PROGRESS_LOG_SECONDS, default 10)."""
    from .settings import load_progress_seconds

    return load_progress_seconds()


class Progress:
    """Where counts go. This base class drops them."""

    def start(self, stage: str, total: int, unit: str, note: str = "") -> None:
        """A stage begins with ``total`` units of work (files, texts, points)."""

    def more(self, stage: str, amount: int) -> None:
        """The stage has ``amount`` more units of work than it started with (found as it goes)."""

    def advance(self, stage: str, amount: int = 1) -> None:
        """``amount`` more units of the stage are done."""

    def update(self, stage: str, done: int) -> None:
        """``done`` units of the stage are done in all."""

    def finish(self, stage: str, note: str = "") -> None:
        """The stage ended (all done, or stopped early)."""

    def close(self) -> None:
        """No more stages."""

    def counted(self, stage: str, items: Iterable[T], every: int = 256) -> Iterator[T]:
        """``items`` unchanged, advancing ``stage`` by one per item (reported every ``every`` items)."""
        pending = 0
        for item in items:
            yield item
            pending += 1
            if pending >= every:
                self.advance(stage, pending)
                pending = 0
        if pending:
            self.advance(stage, pending)


NO_PROGRESS = Progress()


@dataclass
class _Stage:
    total: int
    unit: str
    done: int = 0
    started: float = 0.0
    last_line: float = 0.0
    finished: bool = False


def _rate(done: int, seconds: float, unit: str) -> str:
    if seconds < 0.5 or not done:
        return ""
    return f", {done / seconds:,.0f} {unit}/s" if done / seconds >= 10 else f", {done / seconds:,.1f} {unit}/s"


class LineProgress(Progress):
    """Plain lines through ``emit``: at most one per stage every ``interval`` seconds, and one at its end."""

    def __init__(self, emit: Callable[[str], None], interval: float | None = None, clock=time.monotonic) -> None:
        self.emit = emit
        self.interval = log_interval() if interval is None else interval
        self.clock = clock
        self.stages: dict[str, _Stage] = {}

    def line(self, stage: str) -> str:
        s = self.stages[stage]
        seconds = self.clock() - s.started
        share = f" ({s.done / s.total:.0%})" if s.total else ""
        return f"{stage}: {s.done:,} of {s.total:,} {s.unit}{share}{_rate(s.done, seconds, s.unit)}"

    def start(self, stage: str, total: int, unit: str, note: str = "") -> None:
        now = self.clock()
        self.stages[stage] = _Stage(total=total, unit=unit, started=now, last_line=now)

    def more(self, stage: str, amount: int) -> None:
        if stage in self.stages:
            self.stages[stage].total += amount

    def advance(self, stage: str, amount: int = 1) -> None:
        if stage in self.stages:
            self.update(stage, self.stages[stage].done + amount)

    def update(self, stage: str, done: int) -> None:
        s = self.stages.get(stage)
        if s is None:
            return
        s.done = done
        now = self.clock()
        if now - s.last_line >= self.interval and s.done < s.total:
            s.last_line = now
            self.emit(self.line(stage))

    def finish(self, stage: str, note: str = "") -> None:
        s = self.stages.get(stage)
        if s is None or s.finished:
            return
        s.finished = True
        seconds = self.clock() - s.started
        self.emit(f"{self.line(stage)} in {seconds:.1f} s" + (f"; {note}" if note else ""))


class BarProgress(Progress):
    """rich progress bars on a terminal, one per stage, with counts and the rate; ``close`` stops them.

    With a ``title``, a first line (the command) pulses and counts the time from the start to the
    end, also between stages (Dagster starting a step, recording a step's per-file metadata)."""

    def __init__(self, out: IO[str] | None = None, console: Any = None, title: str | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress
        from rich.table import Column
        from rich.text import Text

        class Counts(ProgressColumn):
            def render(self, task: Any) -> Text:
                if task.fields.get("title"):
                    return Text("")
                total = "?" if task.total is None else f"{int(task.total):,}"
                return Text(f"{int(task.completed):,}/{total} {task.fields['unit']}", style="progress.download")

        width = None
        try:  # measured now: while a step runs, descriptors 1 and 2 point at Dagster's capture files
            width = os.get_terminal_size(out.fileno()).columns if out is not None else None
        except (AttributeError, OSError, ValueError):
            pass
        width = width or None  # a terminal that reports no size (0): rich uses COLUMNS, else 80
        self.console = console or Console(file=out, highlight=False, width=width)
        self.bars = RichProgress(
            TextColumn("{task.description:<7}", table_column=Column(no_wrap=True, min_width=7)),
            BarColumn(bar_width=24, table_column=Column(no_wrap=True, min_width=24)),
            Counts(table_column=Column(no_wrap=True, min_width=14)),
            TextColumn("{task.fields[rate]}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=7)),
            TextColumn("{task.fields[note]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=24)),
            console=self.console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.tasks: dict[str, Any] = {}
        self.units: dict[str, str] = {}
        self.started = False
        self.title = None
        if title:
            self.bars.start()
            self.started = True
            self.title = self.bars.add_task(title, total=None, unit="", rate="", note="", title=True)

    def start(self, stage: str, total: int, unit: str, note: str = "") -> None:
        if not self.started:
            self.bars.start()
            self.started = True
        if stage in self.tasks:
            self.bars.update(self.tasks[stage], total=total, completed=0, note=note)
            return
        self.units[stage] = unit
        self.tasks[stage] = self.bars.add_task(
            stage, total=total or None, unit=unit, rate="", note=note
        )

    def more(self, stage: str, amount: int) -> None:
        if stage in self.tasks:
            self.bars.update(self.tasks[stage], total=(self._task(stage).total or 0) + amount)

    def _task(self, stage: str) -> Any:
        return next(t for t in self.bars.tasks if t.id == self.tasks[stage])

    def _rate(self, stage: str) -> str:
        task = self._task(stage)  # rich measures the speed over its recent samples
        speed = task.finished_speed or task.speed
        return f"{speed:,.0f}/s" if speed else ""

    def advance(self, stage: str, amount: int = 1) -> None:
        if stage in self.tasks:
            self.bars.advance(self.tasks[stage], amount)
            self.bars.update(self.tasks[stage], rate=self._rate(stage))

    def update(self, stage: str, done: int) -> None:
        if stage in self.tasks:
            self.bars.update(self.tasks[stage], completed=done)
            self.bars.update(self.tasks[stage], rate=self._rate(stage))

    def finish(self, stage: str, note: str = "") -> None:
        if stage in self.tasks:
            task = self._task(stage)
            if task.total is None:
                self.bars.update(self.tasks[stage], total=task.completed)
            self.bars.update(self.tasks[stage], note=note, rate=self._rate(stage))
            self.bars.stop_task(self.tasks[stage])

    def close(self) -> None:
        if self.started:
            if self.title is not None:
                self.bars.update(self.title, total=1, completed=1)
            self.bars.stop()
            self.started = False


class Fanout(Progress):
    """The same counts to several sinks."""

    def __init__(self, sinks: Sequence[Progress]) -> None:
        self.sinks = [s for s in sinks if s is not NO_PROGRESS]

    def start(self, stage: str, total: int, unit: str, note: str = "") -> None:
        for sink in self.sinks:
            sink.start(stage, total, unit, note)

    def more(self, stage: str, amount: int) -> None:
        for sink in self.sinks:
            sink.more(stage, amount)

    def advance(self, stage: str, amount: int = 1) -> None:
        for sink in self.sinks:
            sink.advance(stage, amount)

    def update(self, stage: str, done: int) -> None:
        for sink in self.sinks:
            sink.update(stage, done)

    def finish(self, stage: str, note: str = "") -> None:
        for sink in self.sinks:
            sink.finish(stage, note)


def _own_stream(out: IO[str]) -> tuple[IO[str], IO[str] | None]:
    """``out`` on a descriptor of its own when it has one: while a Dagster step runs, its compute-log
    capture points descriptors 1 and 2 at a file, and progress must still reach the terminal or pipe.
    Returns (stream to write, stream to close afterwards)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # a StringIO, a captured stream
        return out, None
    out.flush()
    own = os.fdopen(os.dup(fd), "w", encoding=getattr(out, "encoding", None) or "utf-8", errors="replace",
                    buffering=1)
    return own, own


class _Closing(Progress):
    def __init__(self, inner: Progress, stream: IO[str]) -> None:
        self.inner, self.stream = inner, stream

    def start(self, stage: str, total: int, unit: str, note: str = "") -> None:
        self.inner.start(stage, total, unit, note)

    def more(self, stage: str, amount: int) -> None:
        self.inner.more(stage, amount)

    def advance(self, stage: str, amount: int = 1) -> None:
        self.inner.advance(stage, amount)

    def update(self, stage: str, done: int) -> None:
        self.inner.update(stage, done)

    def finish(self, stage: str, note: str = "") -> None:
        self.inner.finish(stage, note)

    def close(self) -> None:
        self.inner.close()
        try:
            self.stream.close()
        except BrokenPipeError:  # `legal-rag ingest | head`: the reader went away
            pass


def for_terminal(out: IO[str], quiet: bool = False, title: str | None = None) -> Progress:
    """Bars when ``out`` is a terminal (and not ``quiet``), plain lines at a bounded rate otherwise;
    ``title`` (e.g. "ingest") heads the bars with the time since the start."""
    stream, owned = _own_stream(out)
    isatty = getattr(stream, "isatty", None)
    if not quiet and isatty is not None and isatty() and os.environ.get("TERM") != "dumb":
        sink: Progress = BarProgress(stream, title=title)
    else:
        sink = LineProgress(lambda text: print(text, file=stream, flush=True))
    return _Closing(sink, owned) if owned is not None else sink


_command_sink: ContextVar[Progress] = ContextVar("legal_rag_progress", default=NO_PROGRESS)


@contextmanager
def showing(sink: Progress) -> Iterator[Progress]:
    """Within the block, runs executed in this process also report to ``sink``; it is closed after."""
    token = _command_sink.set(sink)
    try:
        yield sink
    finally:
        _command_sink.reset(token)
        sink.close()


def for_run(log: Any) -> Progress:
    """A Dagster run's progress: lines in its log at a bounded rate, and the command's sink if any."""
    return Fanout([LineProgress(log.info), _command_sink.get()])
