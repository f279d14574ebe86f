"""A generated-program campaign in chunks of seeds, logged so that it can stop and go on.

``xsim crosscheck --gen 100000 --seed 1`` takes hours: at about ten programs a second
per ISA, longer than a working session.  With ``--log FILE`` every chunk of seeds that
finishes appends one JSON line to FILE (its seeds, ISAs and budget, the identity of
the code that checked it, the seeds that differed, how long it took).  The same
command with the same log skips every seed a line already holds for the same ISAs,
budget and code, so a campaign stopped by Ctrl-C or the end of a session goes on
where it stopped, and the log is its record.

The code's identity is a hash of the sources that decide a result (the interpreter,
the lifter, the generator, the checker, the runtime) with the llvmlite and unicorn
versions: a change to any of them starts the campaign again, as it must, since it
checks other code.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import XsimError
from . import diff

#: the packages of xsim whose code decides a generated case's result
_PACKAGES = ("isa", "jit", "crosscheck", "runtime", "conformance")
#: seeds per logged chunk
CHUNK = 500


def identity() -> str:
    """A short hash of the code that checks a campaign (see the module's docstring)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    for dist in ("llvmlite", "unicorn"):
        try:
            h.update(f"{dist} {importlib.metadata.version(dist)}\0".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist} none\0".encode())
    return h.hexdigest()[:16]


@dataclass
class Outcome:
    """What a campaign found: the seeds that differed (from the log and from this
    run), each seed's result from this run, and how many seeds the log already held
    and how many this run checked."""
    differing: list[int] = field(default_factory=list)
    results: list[diff.CaseResult] = field(default_factory=list)
    from_log: int = 0
    checked: int = 0
    stopped: bool = False          # interrupted before every seed was checked


def read_log(path: Path) -> list[dict]:
    """The log's lines.  A last line cut short (a run killed while writing it) is
    left out; any other line that is not a chunk's record is an error."""
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise XsimError(f"{path}: cannot read the campaign log: {exc}") from None
    lines = text.split("\n")
    out = []
    for k, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            start, stop = (int(x) for x in rec["seeds"])
            rec["differing"] = [int(s) for s in rec["differing"]]
            if not (isinstance(rec["isas"], list) and isinstance(rec["code"], str)):
                raise TypeError
            int(rec["budget"])
        except (ValueError, KeyError, TypeError):
            if k == len(lines):           # no newline after it: cut short
                continue
            raise XsimError(f"{path}:{k}: not a campaign log line (seeds, isas, budget, "
                            "code, differing)") from None
        rec["seeds"] = (start, stop)
        out.append(rec)
    return out


def _spans(seeds: range, covered: list[tuple[int, int]], size: int) -> Iterator[range]:
    """The seeds of ``seeds`` that no span of ``covered`` holds, in chunks of ``size``
    or fewer."""
    s = seeds.start
    for lo, hi in sorted(covered) + [(seeds.stop, seeds.stop)]:
        lo, hi = max(lo, seeds.start), min(hi, seeds.stop)
        while s < lo:
            yield range(s, min(s + size, lo))
            s = min(s + size, lo)
        s = max(s, hi)


def _append(path: Path, rec: dict | None) -> None:
    """Append ``rec`` to the log (None: only check that it can be appended to)."""
    try:
        with path.open("a") as f:
            if rec is not None:
                f.write(json.dumps(rec) + "\n")
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        raise XsimError(f"{path}: cannot write the campaign log: {exc.strerror}") from None


def _check(args: tuple) -> tuple[int, int, list[diff.CaseResult], float]:
    start, stop, tiers, budget = args
    t0 = time.perf_counter()
    results = diff.run_cases(range(start, stop), tiers, budget)
    return start, stop, results, time.perf_counter() - t0


def _worker() -> None:
    """A worker leaves Ctrl-C to the campaign, which ends the pool and keeps its log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run(seeds: range, tiers: Sequence[str], budget: int = 10_000, jobs: int = 1,
        log: Path | None = None, chunk: int = CHUNK,
        progress: Callable[[str], None] | None = None) -> Outcome:
    """Check every seed's case on ``tiers`` (the first the reference), ``jobs`` chunks
    at a time, skipping what ``log`` already holds for this code and appending each
    finished chunk to it.  ``progress`` gets a line per finished chunk."""
    if chunk < 1:
        raise XsimError(f"--chunk must be at least 1 (got {chunk})")
    tiers = tuple(tiers)
    isas, code = list(tiers[1:]), identity()
    out = Outcome()
    covered = []
    for rec in read_log(log) if log is not None else []:
        if rec["isas"] == isas and int(rec["budget"]) == budget and rec["code"] == code:
            lo, hi = max(rec["seeds"][0], seeds.start), min(rec["seeds"][1], seeds.stop)
            if lo < hi:
                covered.append((lo, hi))
                out.differing += [s for s in rec["differing"] if lo <= s < hi]
    if log is not None:
        _append(log, None)           # an unwritable log stops the campaign before it runs
    todo = list(_spans(seeds, covered, chunk))
    out.from_log = len(seeds) - sum(len(r) for r in todo)
    if jobs > 1 and todo:            # every worker gets work, even on a short campaign
        left = sum(len(r) for r in todo)
        size = max(1, min(chunk, (left + jobs - 1) // jobs))
        todo = [r for span in todo for r in _spans(span, [], size)]
    jobs_args = [(r.start, r.stop, tiers, budget) for r in todo]

    def done(start: int, stop: int, results: list[diff.CaseResult], seconds: float) -> None:
        bad = [r.seed for r in results if r.difference]
        out.checked += stop - start
        out.results += results
        out.differing += bad
        if log is not None:
            _append(log, {"seeds": [start, stop], "isas": isas, "budget": budget,
                          "code": code, "differing": bad, "seconds": round(seconds, 1),
                          "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if progress is not None:
            progress(f"seeds {start}-{stop - 1}: {len(bad)} with differences "
                     f"({seconds:.0f} s; {out.from_log + out.checked} of {len(seeds)} done)")

    try:
        if jobs <= 1:
            for a in jobs_args:
                done(*_check(a))
        elif jobs_args:
            import multiprocessing
            pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_worker)
            try:
                for result in pool.imap_unordered(_check, jobs_args):
                    done(*result)
                pool.close()
            finally:
                pool.terminate()      # on an interrupt: the chunks under way are dropped
                pool.join()
    except KeyboardInterrupt:
        out.stopped = True
    out.differing = sorted(set(out.differing))     # log lines may overlap
    out.results.sort(key=lambda r: r.seed)
    return out
