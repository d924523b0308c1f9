"""Reading the log's segment files: ``<dir>/<YYYY-MM-DD>/<first seq, 12 digits>.jsonl`` (SPEC §6).

Segments are ordered by the first ``seq`` in their names, never by folder. Each complete line is one
record's canonical bytes; bytes after the last newline of the last segment are a torn write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # parsing only (never the canonical bytes): several times faster than json on long logs
    import orjson

    def loads(data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data)  # integers past 64 bits and the like: json decides
except ImportError:  # pragma: no cover - orjson is optional

    def loads(data: bytes) -> Any:
        return json.loads(data)

SEGMENT_NAME = re.compile(r"^(\d{12})\.jsonl$")
DAY_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Segment:
    first: int  # the seq its name says it starts at
    path: Path


def list_segments(directory: Path) -> list[Segment]:
    found: list[Segment] = []
    try:
        days = [d for d in directory.iterdir() if d.is_dir() and DAY_NAME.match(d.name)]
    except FileNotFoundError:
        return []
    for day in days:
        for path in day.iterdir():
            match = SEGMENT_NAME.match(path.name)
            if match and path.is_file():
                found.append(Segment(int(match.group(1)), path))
    found.sort(key=lambda s: (s.first, str(s.path)))
    return found


@dataclass
class Line:
    segment: Segment
    offset: int  # byte offset of the line in its segment
    number: int  # 1-based line number in its segment
    data: bytes  # the record's canonical bytes, without the newline

    @property
    def where(self) -> str:
        return f"{self.segment.path.parent.name}/{self.segment.path.name}:{self.number}"


@dataclass
class Torn:
    segment: Segment
    offset: int
    data: bytes


def iter_lines(segments: list[Segment], torn: list[Torn] | None = None, *, start: int = 0,
               offset: int = 0) -> Iterator[Line]:
    """Every complete line, in log order, from byte ``offset`` of ``segments[start]`` on; unterminated
    tails go to ``torn`` (only the last segment's is a torn write the writer may leave; elsewhere it
    means the segment was cut). Line numbers count from ``offset``."""
    for index in range(start, len(segments)):
        segment = segments[index]
        try:
            with open(segment.path, "rb") as fh:
                if index == start and offset:
                    fh.seek(offset)
                data = fh.read()
        except OSError:
            continue
        base = offset if index == start else 0
        at, number = 0, 0
        end = len(data)
        while at < end:
            stop = data.find(b"\n", at)
            if stop < 0:
                if torn is not None:
                    torn.append(Torn(segment, base + at, data[at:]))
                break
            number += 1
            yield Line(segment, base + at, number, data[at:stop])
            at = stop + 1


def read_line_at(path: Path, offset: int, limit: int = 1 << 26) -> bytes | None:
    """The complete line at ``offset`` of ``path`` (None when there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.readline(limit)
    except OSError:
        return None
    return chunk[:-1] if chunk.endswith(b"\n") else None
