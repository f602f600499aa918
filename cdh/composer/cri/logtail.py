"""The last lines of a container's log, read from its ``logPath`` as crictl would print them.

The CRI log format (what containerd and CRI-O write): one record per line,
``<RFC3339Nano> <stdout|stderr> <tag> <text>``, where the tag is ``F`` (the text ends a
line) or ``P`` (a piece of a longer line, continued by the next record of that stream).
cri-dockerd points ``logPath`` at docker's JSON log (``{"log": "...\\n", "stream": ...}``,
a line without its ``\\n`` being a piece), which is read too. Like crictl, pieces are joined
per stream, timestamps dropped, and stdout and stderr lines kept in file order; records
that parse as neither are skipped (kubelet does the same).

The file is read backwards from its end in blocks, so a huge log costs the size of the
answer, not of the file: at most ``lines`` joined lines and ``max_bytes`` bytes (the newest
kept, cut at a line start when one is in reach). The scan stops at the first of: the start
of the file; MARGIN bytes past the point where enough lines or bytes were in hand (to find
where those lines began); ``4 * max_bytes + 256 * lines`` bytes in all; a record longer
than ``max_bytes``, whatever the file holds.
"""

from __future__ import annotations

import os

BLOCK = 64 * 1024
HEADER_SLACK = 4096          # a record's timestamp, stream and tag fit well within this
SCAN_PER_LINE = 256
MARGIN = 64 * 1024           # how far past enough lines or bytes we look for where they began


class _Line:
    """One joined line, collected backwards from its last piece."""

    __slots__ = ("complete", "pieces", "terminated")

    def __init__(self, terminated: bool) -> None:
        self.pieces: list[bytes] = []   # newest piece first
        self.terminated = terminated    # ends with an F record (else: unfinished at the end of the file)
        self.complete = False           # its first piece has been found

    def text(self) -> bytes:
        return b"".join(reversed(self.pieces)) + (b"\n" if self.terminated else b"")


def tail(path: str, lines: int, max_bytes: int) -> tuple[bytes, bool]:
    """(the last ``lines`` lines, at most ``max_bytes`` bytes; True when something was cut).

    Raises OSError when the file cannot be opened or read.
    """
    if lines <= 0 or max_bytes <= 0:
        return b"", False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        found, cut = _collect(fd, lines, max_bytes)
    finally:
        os.close(fd)
    data = b"".join(line.text() for line in reversed(found))
    if len(data) > max_bytes:
        data, cut = data[-max_bytes:], True
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1:]  # start at a line start when one is in reach
    return data, cut


def _collect(fd: int, lines: int, max_bytes: int) -> tuple[list[_Line], bool]:
    """Lines newest first, and whether the answer may be short of the true tail.

    A line is known whole once an earlier record of its stream (or the start of the file) is
    found. When enough lines or bytes are in hand, the scan goes on for at most MARGIN bytes to
    find those starts; a one-record line whose start is still unseen is then taken as whole
    (the usual case: nothing of that stream nearby), a line seen in pieces is not.
    """
    found: list[_Line] = []
    open_lines: dict[bytes, _Line | None] = {}  # per stream: the line collecting pieces (None: not needed)
    content = 0
    reader = _Backward(fd, max_bytes + HEADER_SLACK, 4 * max_bytes + SCAN_PER_LINE * lines + BLOCK)
    margin_end = None
    for stream, partial, text in reader.records():
        line = open_lines.get(stream)
        if not partial or stream not in open_lines:
            if line is not None:
                line.complete = True  # an earlier F of its stream: the line began after it
            if len(found) >= lines:
                open_lines[stream] = None
                if all(x.complete for x in found[:lines]):
                    return found[:lines], False
                line = None
            else:
                line = _Line(terminated=not partial)
                found.append(line)
                open_lines[stream] = line
        if line is not None:
            line.pieces.append(text)
            content += len(text)
        if margin_end is None and (len(found) >= lines or content > max_bytes):
            margin_end = reader.scanned + MARGIN
        if margin_end is not None and reader.scanned > margin_end:
            break
    else:
        if not reader.stopped:
            for line in found:
                line.complete = True  # the start of the file
            return found[:lines], False
    for line in found:
        if line.terminated and len(line.pieces) == 1:
            line.complete = True
    kept = _whole_suffix(found[:lines])
    short = len(kept) < min(lines, len(found)) or (reader.stopped and len(found) < lines)
    return kept, short or (bool(kept) and not kept[-1].complete)


def _whole_suffix(found: list[_Line]) -> list[_Line]:
    """Keep the newest lines down to the newest one still missing its start, so what is printed
    is a true tail of the log (only its first line may lack a beginning)."""
    incomplete = [i for i, line in enumerate(found) if not line.complete]
    return found[:incomplete[0] + 1] if incomplete else found


class _Backward:
    """The file's records, newest first, read in blocks from the end. ``stopped``: a bound ended
    the reading before the start of the file (``scan_limit`` bytes, or one record over
    ``max_record`` bytes, or the file shrank under us)."""

    def __init__(self, fd: int, max_record: int, scan_limit: int) -> None:
        self.fd = fd
        self.max_record = max_record
        self.scan_limit = scan_limit
        self.scanned = 0
        self.stopped = False

    def records(self):
        for raw in self._raw_lines():
            record = parse_record(raw)
            if record is not None:
                yield record

    def _raw_lines(self):
        pos = os.fstat(self.fd).st_size
        carry = b""
        at_end = True
        while pos > 0:
            n = min(BLOCK, pos)
            pos -= n
            chunk = os.pread(self.fd, n, pos)
            if self.scanned >= self.scan_limit or len(chunk) != n:
                self.stopped = True
                return
            self.scanned += n
            parts = (chunk + carry).split(b"\n")
            carry = parts[0]
            for raw in reversed(parts[1:]):
                if raw or not at_end:
                    yield raw
                at_end = False
            if len(carry) > self.max_record:  # one record longer than anything we could keep
                self.stopped = True
                return
        if carry:
            yield carry


def parse_record(raw: bytes) -> tuple[bytes, bool, bytes] | None:
    """(stream, partial, text) of one CRI or docker-JSON log record; None when it is neither."""
    if raw.startswith(b"{"):
        return _parse_docker_json(raw)
    first = raw.find(b" ")
    second = raw.find(b" ", first + 1) if first > 0 else -1
    if second < 0:
        return None
    stream = raw[first + 1:second]
    if stream not in (b"stdout", b"stderr"):
        return None
    third = raw.find(b" ", second + 1)
    tag = raw[second + 1:] if third < 0 else raw[second + 1:third]
    text = b"" if third < 0 else raw[third + 1:]
    kind = tag.split(b":", 1)[0]  # tags may carry more flags after ':' (CRI log format)
    if kind not in (b"F", b"P"):
        return None
    return stream, kind == b"P", text


def _parse_docker_json(raw: bytes) -> tuple[bytes, bool, bytes] | None:
    from json import loads  # only cri-dockerd's logs need it

    try:
        obj = loads(raw)
        log, stream = obj["log"], obj["stream"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(log, str) or stream not in ("stdout", "stderr"):
        return None
    text = log.encode("utf-8", "surrogateescape")
    if text.endswith(b"\n"):
        return stream.encode(), False, text[:-1]
    return stream.encode(), True, text
