"""Reader for bpf_conformance ``.data`` test files.

A file is a list of sections, each starting with a line ``-- NAME``: ``asm``
(uBPF-syntax program), ``raw`` (hex words), ``mem`` (hex bytes), ``result``
(expected r0, hex), ``error`` (expected message); ``c`` and ``no register
offset`` are notes.  ``#`` starts a comment in the asm and mem sections.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataFile:
    path: Path
    asm: str | None
    raw: bytes | None
    memory: bytes
    result: int | None
    error: str | None


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def read_data_file(path: str | Path) -> DataFile:
    path = Path(path)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("-- "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    asm = "\n".join(sections["asm"]) if "asm" in sections else None
    raw = None
    if "raw" in sections:
        words = _strip_comments("\n".join(sections["raw"])).split()
        raw = b"".join(int(w, 16).to_bytes(8, "little") for w in words)
    memory = bytes.fromhex("".join(_strip_comments("\n".join(sections.get("mem", []))).split()))
    result_text = _strip_comments("\n".join(sections.get("result", []))).strip()
    result = int(result_text, 16) & ((1 << 64) - 1) if result_text else None
    error = "\n".join(sections["error"]).strip() if "error" in sections else None
    return DataFile(path, asm, raw, memory, result, error)
