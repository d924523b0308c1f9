"""PostgreSQL's own regression SQL (``tests/testdata/pg_regress``) split into statements, as psql would.

The files are psql scripts: meta-commands (``\\...`` lines) are dropped (``\\g``-style ones end the
statement they follow), ``COPY ... FROM stdin`` data blocks are skipped up to their ``\\.``, and a statement
using a psql variable (``:name``, ``:'name'``, ``:"name"``) is set aside, as psql would have substituted
text we do not have. Statements are cut at ``;`` outside parentheses with PostgreSQL's own lexer
(``pglast.parser.scan``), keeping ``BEGIN ATOMIC ... END`` bodies of CREATE FUNCTION / PROCEDURE whole
(psql's rule: there BEGIN and CASE open a block, END closes one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pglast.parser import scan

CORPUS_DIR = Path(__file__).parent / "testdata" / "pg_regress"
SETUP_FILE = "test_setup.sql"
_ENDS_QUERY = re.compile(r"\\(g|gx|gset|gexec|gdesc|crosstabview|watch)\b")
_COPY_FROM_STDIN = re.compile(r"(?is)^\s*\\?copy\b.*\bfrom\s+(p?stdin|stdout)\b")


@dataclass(frozen=True)
class Statement:
    file: str
    line: int  # 1-based line of its first character in the file
    text: str
    psql_variable: bool  # uses :name / :'name' / :"name": psql would have substituted it


def files() -> list[Path]:
    """The corpus files, ``test_setup.sql`` first (the others use its tables), then by name."""
    found = sorted(CORPUS_DIR.glob("*.sql"))
    return sorted(found, key=lambda p: (p.name != SETUP_FILE, p.name))


def statements(path: Path) -> list[Statement]:
    """The SQL statements of one psql script, in order."""
    kept: list[tuple[int, str]] = []  # (line number, text) of the lines psql sends to the server
    in_copy_data = False
    pending = ""  # the current statement's text so far, to spot a COPY ... FROM stdin ending on a line
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if in_copy_data:
            in_copy_data = line.strip() != "\\."
            continue
        stripped = line.lstrip()
        if stripped.startswith("\\"):
            if _ENDS_QUERY.match(stripped):
                kept.append((number, ";"))
                pending = ""
            elif _COPY_FROM_STDIN.match(stripped):
                in_copy_data = True
            continue
        ended = _ENDS_QUERY.search(line)
        if ended and "'" not in line[ended.start():]:
            line = line[: ended.start()] + ";"
        line = line.replace("\\;", ";")  # psql's \; : the statements go in one Query; here, one by one
        kept.append((number, line))
        if not stripped.startswith("--"):
            pending += line + "\n"
        if line.split("--")[0].rstrip().endswith(";"):
            if _COPY_FROM_STDIN.match(pending.rsplit(";", 2)[-2] if pending.count(";") > 1 else pending):
                in_copy_data = True
            pending = ""
    return _split(path.name, kept)


def _split(name: str, lines: list[tuple[int, str]]) -> list[Statement]:
    text = "\n".join(line for _, line in lines)
    encoded = text.encode("utf-8")
    starts: list[int] = []  # byte offset of each line start, for line numbers
    offset = 0
    for _, line in lines:
        starts.append(offset)
        offset += len(line.encode("utf-8")) + 1
    try:
        tokens = scan(text)
    except Exception:  # noqa: BLE001 - a file the lexer rejects: cut at line-final semicolons
        return _split_by_lines(name, lines)
    found: list[Statement] = []
    begin = None
    depth = 0
    atomic = 0
    variable = False
    first_words: list[str] = []
    for index, token in enumerate(tokens):
        if begin is None:
            begin, depth, atomic, variable, first_words = token.start, 0, 0, False, []
        if len(first_words) < 4:
            first_words.append(token.name)
        routine = first_words[:1] == ["CREATE"] and any(
            w in ("FUNCTION", "PROCEDURE") for w in first_words[1:4])
        if token.name == "ASCII_58" and index + 1 < len(tokens):
            following = tokens[index + 1]  # ":name" with nothing between: a psql variable
            if following.start == token.end + 1 and (following.name in ("IDENT", "SCONST")
                                                     or following.kind != "NO_KEYWORD"):
                variable = True
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
        elif routine and token.name in ("BEGIN_P", "CASE"):
            atomic += 1
        elif routine and token.name == "END_P" and atomic:
            atomic -= 1
        elif token.name == "ASCII_59" and depth <= 0 and atomic == 0:
            chunk = encoded[begin:token.start].decode("utf-8", "replace").strip()
            if chunk:
                found.append(Statement(name, _line_of(begin, starts, lines), chunk, variable))
            begin = None
    if begin is not None:
        chunk = encoded[begin:].decode("utf-8", "replace").strip()
        if chunk:
            found.append(Statement(name, _line_of(begin, starts, lines), chunk, variable))
    return found


def _line_of(offset: int, starts: list[int], lines: list[tuple[int, str]]) -> int:
    low, high = 0, len(starts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if starts[middle] <= offset:
            low = middle
        else:
            high = middle - 1
    return lines[low][0] if lines else 0


def _split_by_lines(name: str, lines: list[tuple[int, str]]) -> list[Statement]:
    found: list[Statement] = []
    buffer: list[str] = []
    first = 0
    for number, line in lines:
        if not buffer:
            first = number
        buffer.append(line)
        if line.rstrip().endswith(";"):
            chunk = "\n".join(buffer).strip().rstrip(";").strip()
            if chunk:
                found.append(Statement(name, first, chunk, bool(re.search(r"(?<![:\w]):['\"]?\w", chunk))))
            buffer = []
    return found
