"""Packet captures in and out: the ``nic`` hook's input (pcap and pcapng) and output (pcap).

Readers yield :class:`Packet` records with integer nanosecond timestamps, the wire
length and the link type, so a run over a capture can feed Ethernet frames to
XDP/TC programs and still say what it did with every other record.  Broken
files give a :class:`PcapError` naming the file, the packet and the byte
offset; nothing is allocated from a length field before it is bounds-checked.

The record framing is parsed here with :mod:`struct` rather than with
``dpkt.pcap.Reader`` / ``dpkt.pcapng.Reader``: those drop the wire length,
turn timestamps into floats, silently yield the short tail of a cut record,
read whatever captured length a corrupt header claims, and (pcapng) keep only
the first interface's link type and skip Simple Packet Blocks.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Literal

import numpy as np
from numba import njit

from xsim.errors import XsimError
from xsim.isa.memops import copy_bytes, store32

__all__ = ["ETHERNET", "MAX_CAPLEN", "Packet", "PacketBatch", "PcapError", "PcapReader",
           "PcapWriter", "read_packets"]

ETHERNET = 1
"""LINKTYPE_ETHERNET: the only link type whose frames XDP and TC programs see."""

MAX_CAPLEN = 256 * 1024
"""Largest captured length accepted from a record (tcpdump's default snaplen)."""

_MAX_BLOCK = MAX_CAPLEN + 64 * 1024   # a pcapng packet block: data plus headers and options

_PCAP_MAGIC = {  # magic as read little-endian -> (struct byte order, nanoseconds)
    0xA1B2C3D4: ("<", False), 0xA1B23C4D: ("<", True),
    0xD4C3B2A1: (">", False), 0x4D3CB2A1: (">", True),
}
_PCAP_MODIFIED = {0xA1B2CD34, 0x34CDB2A1}
_SHB = 0x0A0D0D0A
_IDB, _PB, _SPB, _EPB = 1, 2, 3, 6
_BOM = 0x1A2B3C4D
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14

OnError = Literal["raise", "stop"]


class PcapError(XsimError):
    """A capture that cannot be read (or written): the file, the packet, the byte offset, why.

    ``index`` is the 0-based index the failing packet would have had (``None`` for the
    file header); ``offset`` is where its record (or pcapng block) starts in the file.
    """

    def __init__(self, reason: str, path: str, index: int | None = None,
                 offset: int = 0) -> None:
        self.reason, self.path, self.index, self.offset = reason, path, index, offset
        where = "file header" if index is None else f"packet {index}"
        super().__init__(f"{path}: {where} at byte {offset}: {reason}")


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured frame, as the capture recorded it."""

    index: int
    timestamp_ns: int
    data: bytes
    orig_len: int
    linktype: int = ETHERNET
    interface: int = 0

    @property
    def truncated(self) -> bool:
        """The capture kept fewer bytes than were on the wire (a snaplen-limited capture)."""
        return len(self.data) < self.orig_len


@dataclass
class PacketBatch:
    """Consecutive packets of a capture in flat arrays, for loops that run in compiled code.

    Packet ``first + i`` has the bytes ``data[offset[i]:offset[i] + caplen[i]]``.
    """

    first: int
    data: np.ndarray          # uint8
    offset: np.ndarray        # int64, into data
    caplen: np.ndarray        # int64
    orig_len: np.ndarray      # int64
    timestamp_ns: np.ndarray  # int64
    linktype: np.ndarray      # int64

    def __len__(self) -> int:
        return len(self.offset)

    def packet(self, i: int) -> Packet:
        """Packet ``first + i`` as a :class:`Packet`."""
        o = int(self.offset[i])
        return Packet(self.first + i, int(self.timestamp_ns[i]),
                      self.data[o:o + int(self.caplen[i])].tobytes(), int(self.orig_len[i]),
                      int(self.linktype[i]))

    @classmethod
    def of(cls, packets: list[Packet]) -> PacketBatch:
        lens = np.array([len(p.data) for p in packets], dtype=np.int64)
        offset = np.zeros(len(packets), dtype=np.int64)
        np.cumsum(lens[:-1], out=offset[1:])
        data = np.frombuffer(b"".join(p.data for p in packets), dtype=np.uint8)
        return cls(packets[0].index if packets else 0, data, offset, lens,
                   np.array([p.orig_len for p in packets], dtype=np.int64),
                   np.array([p.timestamp_ns for p in packets], dtype=np.int64),
                   np.array([p.linktype for p in packets], dtype=np.int64))


#: how much of a classic pcap file a batch reads at once (more than a record's most)
_CHUNK = 8 << 20


@njit(cache=True)
def _u32(buf, pos, big):
    if big:
        return (np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16) | \
            (np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3])
    return (np.int64(buf[pos + 3]) << 24) | (np.int64(buf[pos + 2]) << 16) | \
        (np.int64(buf[pos + 1]) << 8) | np.int64(buf[pos])


@njit(cache=True)
def _index_pcap(buf, end, big, scale, limit, offset, caplen, orig_len, stamp):
    """Index the whole records of ``buf[:end]`` (classic pcap, after the file header)
    into the arrays, at most their length; returns (records, bytes used, the caplen of a
    record over ``limit``, or -1)."""
    pos, n = 0, 0
    while n < len(offset) and pos + 16 <= end:
        cap = _u32(buf, pos + 8, big)
        if cap > limit:
            return n, pos, cap
        if pos + 16 + cap > end:
            break
        stamp[n] = _u32(buf, pos, big) * 1_000_000_000 + _u32(buf, pos + 4, big) * scale
        caplen[n] = cap
        orig_len[n] = _u32(buf, pos + 12, big)
        offset[n] = pos + 16
        pos += 16 + cap
        n += 1
    return n, pos, -1


@njit(cache=True)
def _pack_records(data, offset, length, stamp, nanoseconds):
    """Classic pcap records (little-endian headers, wire length = captured) of the packets
    ``data[offset[i]:offset[i] + length[i]]`` (the caller checked they lie in ``data``)."""
    total = 0
    for i in range(len(offset)):
        total += 16 + length[i]
    out = np.empty(total, dtype=np.uint8)
    pos = 0
    for i in range(len(offset)):
        sec = stamp[i] // 1_000_000_000
        frac = stamp[i] % 1_000_000_000
        if not nanoseconds:
            frac //= 1000
        n = length[i]
        store32(out, pos, np.uint64(sec))
        store32(out, pos + 4, np.uint64(frac))
        store32(out, pos + 8, np.uint64(n))
        store32(out, pos + 12, np.uint64(n))
        copy_bytes(out, pos + 16, data, offset[i], n)
        pos += 16 + n
    return out


_CUT = ("the capture was cut short (capture killed, disk full, or copied while still "
        "being written); the packets before it are good, and on_error='stop' keeps "
        "them")


class PcapReader:
    """The packets of a pcap or pcapng file; iterable (each pass re-reads the file).

    The file header is checked here, so a file that is not a capture fails at once.
    A bad record raises :class:`PcapError` during iteration after the packets before
    it, or with ``on_error="stop"`` ends the iteration and is appended to ``errors``.
    ``linktypes[i]`` is the link type of interface ``i`` (one entry for pcap; for
    pcapng it grows as interface blocks are read, numbered across the whole file).
    """

    def __init__(self, path: str | os.PathLike[str], on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "stop"):
            raise ValueError(f"on_error must be 'raise' or 'stop', not {on_error!r}")
        self.path = os.fspath(path)
        self.on_error: OnError = on_error
        self.errors: list[PcapError] = []
        self.linktypes: list[int] = []
        self.format: Literal["pcap", "pcapng"] = "pcap"
        self.nanoseconds = False      # pcap: nanosecond magic
        self.snaplen = 0              # pcap: from the file header (0: none given)
        self._order = "<"
        with self._open() as f:
            self._read_header(f)

    def _open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise PcapError(f"cannot read the file: {exc.strerror or exc}", self.path) from None

    def _err(self, reason: str, index: int | None, offset: int) -> PcapError:
        return PcapError(reason, self.path, index, offset)

    def _read_header(self, f: BinaryIO) -> None:
        head = f.read(24)
        if len(head) < 4:
            raise self._err("the file is empty" if not head else
                            f"only {len(head)} bytes: too short to be a pcap or pcapng file",
                            None, 0)
        magic = struct.unpack_from("<I", head)[0]
        if magic == _SHB:
            self.format = "pcapng"
            f.seek(0)
            size = os.fstat(f.fileno()).st_size
            self._order = self._block(f, 0, size, "<", None)[3]
            return
        if magic in _PCAP_MAGIC:
            self._order, self.nanoseconds = _PCAP_MAGIC[magic]
            if len(head) < 24:
                raise self._err(f"the file ends after {len(head)} of the 24 bytes of the pcap "
                                "file header: it was cut short", None, 0)
            snaplen, network = struct.unpack_from(self._order + "II", head, 16)
            self.snaplen = snaplen
            self.linktypes = [network & 0x03FFFFFF]  # upper bits carry FCS information
            return
        if magic in _PCAP_MODIFIED:
            reason = ("a 'modified' (Kuznetzov) pcap file, which is not supported: convert "
                      "it with `editcap -F pcap`")
        elif head[:2] == b"\x1f\x8b":
            reason = "gzip-compressed data: gunzip the capture first"
        else:
            reason = (f"not a pcap or pcapng file (it starts with {head[:8].hex(' ')}; a pcap "
                      "file starts with d4 c3 b2 a1 or 4d 3c b2 a1 (either byte order), "
                      "a pcapng file with 0a 0d 0d 0a)")
        raise self._err(reason, None, 0)

    def _shb_order(self, head: bytes, index: int | None, offset: int) -> str:
        """The byte order a section header block declares (head: its first 12+ bytes)."""
        if len(head) < 12:
            raise self._err(f"the file ends {len(head)} bytes into a pcapng section header "
                            f"block: {_CUT}", index, offset)
        bom = head[8:12]
        if bom == struct.pack("<I", _BOM):
            return "<"
        if bom == struct.pack(">I", _BOM):
            return ">"
        raise self._err(f"pcapng section header has byte-order magic {bom.hex(' ')}, not "
                        "1a 2b 3c 4d in either order: the file is corrupt", index, offset)

    def __iter__(self) -> Iterator[Packet]:
        self.errors.clear()
        records = self._pcap() if self.format == "pcap" else self._pcapng()
        try:
            yield from records
        except PcapError as exc:
            if self.on_error == "raise":
                raise
            self.errors.append(exc)

    def batches(self, size: int = 65536) -> Iterator[PacketBatch]:
        """The packets in batches of at most ``size``, with the same errors as iterating.

        A classic pcap file is indexed in compiled code, chunk by chunk; a pcapng file
        goes through the record reader (its blocks and options vary too much to gain)."""
        self.errors.clear()
        try:
            if self.format == "pcap":
                yield from self._pcap_batches(size)
            else:
                packets: list[Packet] = []
                for pkt in self._pcapng():
                    packets.append(pkt)
                    if len(packets) == size:
                        yield PacketBatch.of(packets)
                        packets = []
                if packets:
                    yield PacketBatch.of(packets)
        except PcapError as exc:
            if self.on_error == "raise":
                raise
            self.errors.append(exc)

    def _pcap_batches(self, size: int) -> Iterator[PacketBatch]:
        big = self._order == ">"
        scale = 1 if self.nanoseconds else 1000
        limit = min(self.snaplen or MAX_CAPLEN, MAX_CAPLEN)
        index, offset = 0, 24
        with self._open() as f:
            f.seek(24)
            buf = np.zeros(0, dtype=np.uint8)
            eof = False
            while True:
                if not eof and len(buf) < _CHUNK:
                    # a new array each time: the batches handed out keep the old one
                    grown = np.empty(len(buf) + _CHUNK, dtype=np.uint8)
                    grown[:len(buf)] = buf
                    got = f.readinto(memoryview(grown)[len(buf):])
                    eof = got == 0
                    buf = grown[:len(buf) + got]
                arrays = [np.empty(size, dtype=np.int64) for _ in range(4)]
                n, used, bad = _index_pcap(buf, len(buf), big, scale, limit, *arrays)
                if n:
                    offs, caps, origs, stamps = (a[:n] for a in arrays)
                    yield PacketBatch(index, buf, offs, caps, origs, stamps,
                                      np.full(n, self.linktypes[0], dtype=np.int64))
                    index += n
                    offset += used
                    buf = buf[used:]
                if bad >= 0:
                    raise self._err(self._too_long(bad, self.snaplen), index, offset)
                if eof and n == 0:
                    if len(buf) == 0:
                        return
                    if len(buf) < 16:
                        raise self._err(f"the file ends {len(buf)} bytes into the 16-byte "
                                        f"record header: {_CUT}", index, offset)
                    cap = int(_u32(buf, 8, big))
                    raise self._err(f"the record has {cap} captured bytes but the file ends "
                                    f"after {len(buf) - 16} of them: {_CUT}", index, offset)

    def _pcap(self) -> Iterator[Packet]:
        unpack = struct.Struct(self._order + "IIII").unpack
        scale = 1 if self.nanoseconds else 1000
        linktype = self.linktypes[0]
        limit = min(self.snaplen or MAX_CAPLEN, MAX_CAPLEN)
        with self._open() as f:
            f.seek(24)
            index, offset = 0, 24
            while True:
                head = f.read(16)
                if not head:
                    return
                if len(head) < 16:
                    raise self._err(f"the file ends {len(head)} bytes into the 16-byte record "
                                    f"header: {_CUT}", index, offset)
                sec, frac, caplen, orig_len = unpack(head)
                if caplen > limit:
                    raise self._err(self._too_long(caplen, self.snaplen), index, offset)
                data = f.read(caplen)
                if len(data) < caplen:
                    raise self._err(f"the record has {caplen} captured bytes but the file ends "
                                    f"after {len(data)} of them: {_CUT}", index, offset)
                yield Packet(index, sec * 1_000_000_000 + frac * scale, data, orig_len,
                             linktype, 0)
                index += 1
                offset += 16 + caplen

    @staticmethod
    def _too_long(caplen: int, snaplen: int) -> str:
        if caplen > MAX_CAPLEN:
            return (f"captured length {caplen} is over the {MAX_CAPLEN}-byte limit: the "
                    "record header is corrupt")
        return (f"captured length {caplen} is larger than the capture's snaplen {snaplen}: "
                "the record header (or the snaplen) is corrupt")

    def _block(self, f: BinaryIO, offset: int, size: int, order: str,
               where: int | None) -> tuple[int, int, bytes | None, str]:
        """(type, length, the whole block or None when skipped, byte order) at ``offset``.

        Every length is checked against the file size and a limit before anything is
        read; blocks the reader does not need (statistics, names, custom) are seeked over.
        """
        head = f.read(12)
        if len(head) >= 4 and struct.unpack_from("<I", head)[0] == _SHB:
            order = self._shb_order(head, where, offset)
        elif len(head) < 8:
            raise self._err(f"the file ends {len(head)} bytes into a pcapng block header: "
                            f"{_CUT}", where, offset)
        btype, blen = struct.unpack_from(order + "II", head)
        if blen < 12 or blen % 4:
            raise self._err(f"pcapng block type {btype:#x} has length {blen}, which is not "
                            "a multiple of 4 of at least 12: the file is corrupt", where, offset)
        if offset + blen > size:
            raise self._err(f"a pcapng block of {blen} bytes (type {btype:#x}) runs past the "
                            f"end of the file, {size - offset} bytes away: {_CUT}", where, offset)
        if btype not in (_SHB, _IDB, _PB, _SPB, _EPB):
            f.seek(offset + blen)
            return btype, blen, None, order
        if blen > _MAX_BLOCK:
            raise self._err(f"pcapng block type {btype:#x} claims {blen} bytes, over the "
                            f"{_MAX_BLOCK}-byte limit: the file is corrupt", where, offset)
        block = head + f.read(blen - len(head))
        if struct.unpack_from(order + "I", block, blen - 4)[0] != blen:
            raise self._err(f"pcapng block type {btype:#x}: the length at its end does not "
                            f"repeat the {blen} at its start: the file is corrupt", where, offset)
        if btype == _SHB:
            if blen < 28:
                raise self._err(f"pcapng section header block of {blen} bytes is shorter "
                                "than 28: the file is corrupt", where, offset)
            major = struct.unpack_from(order + "H", block, 12)[0]
            if major != 1:
                raise self._err(f"pcapng major version {major} is not supported (only 1)",
                                where, offset)
        return btype, blen, block, order

    def _pcapng(self) -> Iterator[Packet]:
        self.linktypes.clear()
        # per interface of the current section: (snaplen, units per second, offset in ns)
        section: list[tuple[int, int, int]] = []
        base = 0                       # file-wide number of the section's interface 0
        order = self._order
        index = offset = 0
        with self._open() as f:
            size = os.fstat(f.fileno()).st_size
            while offset < size:
                btype, blen, block, order = self._block(f, offset, size, order,
                                                        index if offset else None)
                if block is None:
                    pass
                elif btype == _SHB:
                    base, section = len(self.linktypes), []
                elif btype == _IDB:
                    if blen < 20:
                        raise self._err(f"pcapng interface description block of {blen} bytes "
                                        "is shorter than 20: the file is corrupt", index, offset)
                    linktype, _, snaplen = struct.unpack_from(order + "HHI", block, 8)
                    units, ts_off = _idb_clock(block, order)
                    self.linktypes.append(linktype)
                    section.append((snaplen, units, ts_off))
                else:
                    yield self._packet(block, btype, order, section, base, index, offset)
                    index += 1
                offset += blen

    def _packet(self, block: bytes, btype: int, order: str,
                section: list[tuple[int, int, int]], base: int, index: int,
                offset: int) -> Packet:
        """The packet of an EPB, SPB or (obsolete) PB, checked against its interface."""
        blen = len(block)
        if btype == _SPB:
            fixed = 16
            if blen < fixed:
                raise self._err("pcapng simple packet block is too short", index, offset)
            iface, ts, orig_len = 0, 0, struct.unpack_from(order + "I", block, 8)[0]
        else:
            fixed = 32
            if blen < fixed:
                raise self._err(f"pcapng packet block (type {btype}) of {blen} bytes is "
                                "shorter than 32: the file is corrupt", index, offset)
            if btype == _EPB:
                iface, high, low, caplen, orig_len = struct.unpack_from(order + "IIIII",
                                                                        block, 8)
            else:
                iface, _, high, low, caplen, orig_len = struct.unpack_from(order + "HHIIII",
                                                                           block, 8)
            ts = high << 32 | low
        if iface >= len(section):
            raise self._err(f"packet block names interface {iface} but its section has "
                            f"{len(section)} interface description block(s) before it: the "
                            "file is corrupt", index, offset)
        snaplen, units, ts_off = section[iface]
        if btype == _SPB:   # no captured length field: the spec's min(orig_len, snaplen)
            caplen = min(orig_len, snaplen) if snaplen else orig_len
        if caplen > MAX_CAPLEN or (snaplen and caplen > snaplen):
            raise self._err(self._too_long(caplen, snaplen), index, offset)
        if fixed - 4 + caplen > blen - 4:
            raise self._err(f"packet block of {blen} bytes cannot hold its {caplen} captured "
                            "bytes: the file is corrupt", index, offset)
        data = block[fixed - 4:fixed - 4 + caplen]
        stamp = 0 if btype == _SPB else ts_off + ts * 1_000_000_000 // units
        return Packet(index, stamp, data, orig_len, self.linktypes[base + iface], base + iface)


def _idb_clock(block: bytes, order: str) -> tuple[int, int]:
    """(timestamp units per second, offset in ns) from an IDB's if_tsresol / if_tsoffset.

    Other options are not needed and are not looked at; a malformed option list ends
    the walk (the defaults, microseconds and no offset, stand).
    """
    units, ts_off, pos, end = 1_000_000, 0, 16, len(block) - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", block, pos)
        value = block[pos + 4:pos + 4 + length]
        if code == 0 or len(value) < length:
            break
        if code == _OPT_TSRESOL and length >= 1:
            exp = value[0] & 0x7F
            units = (2 if value[0] & 0x80 else 10) ** exp if exp < 64 else units
        elif code == _OPT_TSOFFSET and length >= 8:
            ts_off = struct.unpack_from(order + "q", value)[0] * 1_000_000_000
        pos += 4 + (length + 3) // 4 * 4
    return units, ts_off


def read_packets(path: str | os.PathLike[str], on_error: OnError = "raise") -> Iterator[Packet]:
    """The packets of a pcap or pcapng file (see :class:`PcapReader`; it keeps ``errors``)."""
    return iter(PcapReader(path, on_error))


class PcapWriter:
    """Writes a classic pcap file (little-endian, so output is the same on every host).

    The header goes out on opening, so even a run that writes no packet leaves a
    valid capture.  ``count`` is the packets written, ``bytes`` their captured bytes.
    A batch (:meth:`write_batch`) is written by a thread of the writer's own while
    the caller goes on (one batch at a time, in order); the next write, and
    ``close``, wait for it and raise what it met.
    """

    def __init__(self, path: str | os.PathLike[str], linktype: int = ETHERNET,
                 nanoseconds: bool = False, snaplen: int = MAX_CAPLEN) -> None:
        self.path = os.fspath(path)
        self.linktype, self.nanoseconds, self.snaplen = linktype, nanoseconds, snaplen
        self.count = 0
        self.bytes = 0
        self._record = struct.Struct("<IIII").pack
        try:
            self._f: BinaryIO = open(self.path, "wb")
        except OSError as exc:
            raise PcapError(f"cannot create the file: {exc.strerror or exc}", self.path) from None
        magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self._thread: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def _settle(self) -> None:
        """Wait for the batch being written; its error, as a PcapError."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except OSError as exc:
                raise PcapError(f"cannot write: {exc.strerror or exc}", self.path) from None

    def write(self, data: bytes | bytearray | memoryview, timestamp_ns: int = 0,
              orig_len: int | None = None) -> None:
        """Append one packet; ``orig_len`` (default: its length) is the wire length."""
        data = bytes(data)
        orig = len(data) if orig_len is None else orig_len
        where = 24 + 16 * self.count + self.bytes
        if len(data) > self.snaplen:
            raise PcapError(f"{len(data)} bytes is more than the file's snaplen "
                            f"{self.snaplen}", self.path, self.count, where)
        if orig < len(data):
            raise PcapError(f"orig_len {orig} is less than the {len(data)} bytes given",
                            self.path, self.count, where)
        if not 0 <= timestamp_ns < (1 << 32) * 1_000_000_000:
            raise PcapError(f"timestamp {timestamp_ns} ns does not fit a pcap record "
                            "(0 to 2**32 seconds)", self.path, self.count, where)
        sec, ns = divmod(timestamp_ns, 1_000_000_000)
        frac = ns if self.nanoseconds else ns // 1000
        self._settle()
        self._f.write(self._record(sec, frac, len(data), orig) + data)
        self.count += 1
        self.bytes += len(data)

    def write_batch(self, data: np.ndarray, offset: np.ndarray, length: np.ndarray,
                    timestamp_ns: np.ndarray) -> None:
        """Append the packets ``data[offset[i]:offset[i] + length[i]]`` at once."""
        if not len(offset):
            return
        if int(offset.min()) < 0 or int((offset + length).max()) > len(data) or \
                int(length.min()) < 0:
            raise PcapError("write_batch: a packet lies outside the data given", self.path)
        where = 24 + 16 * self.count + self.bytes
        if int(length.max()) > self.snaplen:
            raise PcapError(f"{int(length.max())} bytes is more than the file's snaplen "
                            f"{self.snaplen}", self.path, self.count, where)
        if int(timestamp_ns.min()) < 0 or int(timestamp_ns.max()) >= (1 << 32) * 1_000_000_000:
            raise PcapError("a timestamp does not fit a pcap record (0 to 2**32 seconds)",
                            self.path, self.count, where)
        records = _pack_records(data, offset, length, timestamp_ns, self.nanoseconds)
        self._settle()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="pcap-writer")
        self._pending = self._thread.submit(self._f.write, records)
        self.count += len(offset)
        self.bytes += int(length.sum())

    def close(self) -> None:
        try:
            self._settle()
        finally:
            if self._thread is not None:
                self._thread.shutdown()
            self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
