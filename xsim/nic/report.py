"""The text summary of a capture run: verdicts, outputs, errors and maps, as rich tables."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..runtime.object import Object
from ..runtime.testrun import dump_map
from .pcaprun import PcapSummary

#: how many entries of each map, and how many errors, the text summary shows
SHOWN = 10


@contextmanager
def pcap_progress(enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """A progress line on stderr (packets done, time) while a capture runs, shown only
    on a terminal and once the run has taken a moment."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.completed:,.0f} packets"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("capture", total=None)
        yield lambda done: bar.update(task, completed=done)


def print_summary(summary: PcapSummary, obj: Object, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"{summary.packets} packets in {summary.elapsed_s:.3f} s "
                  f"({summary.pps:,.0f} packets/s)")
    verdicts = Table("verdict", "packets", title="verdicts")
    for name, n in summary.verdicts.most_common():
        verdicts.add_row(name, str(n))
    console.print(verdicts)
    if summary.outputs:
        outputs = Table("output", "packets", "bytes", title="outputs")
        for name, (n, nbytes) in summary.outputs.items():
            outputs.add_row(name, str(n), str(nbytes))
        console.print(outputs)
    if summary.errors:
        console.print(f"{len(summary.errors)} packets not run:")
        for index, message in summary.errors[:SHOWN]:
            console.print(f"  packet {index}: {message}")
    for name, m in obj.maps.items():
        d = dump_map(m)
        entries = d.get("entries", [])
        if not entries:
            continue
        t = Table("key", "value", title=f"map {name} ({d['type']})")
        for e in entries[:SHOWN]:
            t.add_row(e["key"], e.get("value") or e.get("prog") or e.get("map")
                      or " ".join(e.get("values", [])))
        if len(entries) > SHOWN:
            t.add_row("...", f"{len(entries) - SHOWN} more")
        console.print(t)
