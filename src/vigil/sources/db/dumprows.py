"""Row counts read from a mysqldump / mariadb-dump stream as it passes.

MariaDB's dump tool writes extended INSERTs one row per line (MDEV-25152):

    LOCK TABLES `orders` WRITE;
    /*!40000 ALTER TABLE `orders` DISABLE KEYS */;
    INSERT INTO `orders` VALUES (1,'a'),        <- or "VALUES" alone, rows below
    (2,'b),(c');
    /*!40000 ALTER TABLE `orders` ENABLE KEYS */;
    UNLOCK TABLES;

A value never holds a raw newline (the dump escapes it as \\n), so every line
of an INSERT statement is one row, each ends in `),` or `);`, and the first
`);` at a line's end closes the statement. Counting is newline counting
(C speed, the one pass over every byte: `_newlines`) plus one backward pass
of `rfind` for `);\\n` that finds every statement end in a block (cheaper
than `find` on this data); the dump's own LOCK/INSERT/UNLOCK lines are
looked for only between statements. The server's COUNT(*) would scan every
table a second time, in a snapshot of its own.

MySQL's mysqldump and older MariaDB tools write a statement on one line,
`(1,'a'),(2,'b')`, where a `),(` may also sit inside a string. A dump in
which no statement spans lines and some line holds `),(` cannot be counted
this way: `uncertain` names those tables, for the caller to count on the
server, along with any table whose data does not look as above.
"""

from __future__ import annotations

LOCK = b"LOCK TABLES `"
UNLOCK = b"UNLOCK TABLES;"
END = b");\n"
SAMPLE = 4096  # ranges shorter than this are counted plainly and say nothing of row length
LONG_ROW = 64  # bytes per row from which memchr's jumps pay
# Lines a dump writes in a table's data besides its INSERTs: ALTER TABLE ... DISABLE/ENABLE
# KEYS, and with --no-autocommit "set autocommit=0;" and "commit;".
BETWEEN = (b"/*!", b"/*M!", b"set autocommit=0;", b"commit;", b"\n")


class DumpRowCounter:
    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self._ambiguous: set[str] = set()
        self._broken: set[str] = set()
        self._one_row_per_line = False  # seen a statement over several lines
        self._table: str | None = None  # inside this table's LOCK ... UNLOCK
        self._insert = b""  # how this table's INSERT lines start
        self._in_statement = False
        self._statement_at = -1  # where the open statement's INSERT line is in the block, if it is there
        self._lines = 0  # newlines of the open statement counted so far
        self._row_on_insert_line = True
        self._ends: list[int] | None = None  # statement ends in the block from where first needed, descending
        self._carry = bytearray()  # an incomplete last line
        self._long_lines = False  # rows seen so far are long enough for _newlines' memchr path

    def feed(self, chunk: bytes) -> None:
        first = chunk.find(b"\n") + 1
        if not first:  # a long line (a big BLOB's row): a bytearray grows without copying it all again
            self._carry += chunk
            return
        if self._carry:  # the line cut off by the last chunk, completed: a block of its own
            self._carry += chunk[:first]
            head, self._carry = bytes(self._carry), bytearray()
            self._block(head, 0, len(head))
        else:
            first = 0
        cut = chunk.rfind(b"\n") + 1  # whole lines only: every marker is a line start
        self._block(chunk, first, cut)
        self._carry += chunk[cut:]

    def _block(self, data: bytes, pos: int, cut: int) -> None:
        self._ends = None
        self._statement_at = -1
        while pos < cut:
            pos = self._step(data, pos, cut)

    def _step(self, data: bytes, pos: int, cut: int) -> int:
        if self._table is None:
            i = _line_start(data, LOCK, pos, cut)
            return cut if i < 0 else self._lock(data, i)
        if self._in_statement:
            return self._statement(data, pos, cut)
        insert = _line_start(data, self._insert, pos, cut)
        stop = _line_start(data, UNLOCK, pos, cut if insert < 0 else insert)
        nearest = _earliest(insert, stop)
        # A LOCK line before this table's UNLOCK is not the dump's (it sits in a stored
        # program's multi-line string): the next real one ends this table.
        lock = _line_start(data, LOCK, pos, cut if nearest < 0 else nearest)
        gap = _earliest(lock, nearest)
        if not _between_statements(data, pos, cut if gap < 0 else gap):
            self._broken.add(self._table)  # rows outside the INSERTs looked for: a layout not known here
        if lock >= 0:
            return self._lock(data, lock)
        if stop >= 0:
            self._table = None
            return stop + len(UNLOCK)
        if insert < 0:
            return cut
        self._in_statement, self._lines, self._statement_at = True, 0, insert
        self._row_on_insert_line = data[insert + len(self._insert)] != 0x0A
        return insert + 1  # past the statement's own INSERT, which is not its end (and no newline)

    def _statement(self, data: bytes, pos: int, cut: int) -> int:
        """Count the open statement's lines up to its end, or to the block's."""
        assert self._table is not None
        if self._ends is None:
            self._ends = _ends(data, pos, cut)
        while self._ends and self._ends[-1] < pos:
            self._ends.pop()
        if not self._ends:
            self._lines += self._newlines(data, pos, cut)
            return cut
        end = self._ends.pop() + len(END)
        self._lines += self._newlines(data, pos, end)
        rows = self._lines if self._row_on_insert_line else self._lines - 1
        if self._lines > 1:
            self._one_row_per_line = True
        elif data.find(b"),(", self._statement_at, end) >= 0:
            self._ambiguous.add(self._table)  # one line: one row, or many in MySQL's layout
        self.rows[self._table] += rows
        self._in_statement = False
        return end

    def _newlines(self, data: bytes, pos: int, end: int) -> int:
        """data.count(b"\\n", pos, end), twice as fast on long rows: CPython's count of one
        byte tests every byte, where replace() jumps from newline to newline with memchr
        (170-byte rows: 0.21 against 0.43 ms per MiB). On rows under ~48 bytes the jumps
        cost more than they skip, so the row length last seen picks the way."""
        sample = end - pos >= SAMPLE
        if sample and self._long_lines:
            part = data[pos:end]
            found = len(part) - len(part.replace(b"\n", b""))
        else:
            found = data.count(b"\n", pos, end)
        if sample:
            self._long_lines = end - pos >= LONG_ROW * found
        return found

    def _lock(self, data: bytes, i: int) -> int:
        """Enter the data of the table that the LOCK line at i names; where its line ends."""
        eol = data.index(b"\n", i)
        name = data[i + len(LOCK):eol].removesuffix(b"` WRITE;")
        self._table = name.replace(b"``", b"`").decode("utf-8", "replace")
        self._insert = b"INSERT INTO `" + name + b"` VALUES"
        self.rows.setdefault(self._table, 0)
        return eol + 1

    @property
    def uncertain(self) -> set[str]:
        """Tables whose count this stream cannot tell (see the module's docstring)."""
        unfinished = {self._table} if self._in_statement and self._table is not None else set()
        return self._broken | unfinished | (set() if self._one_row_per_line else self._ambiguous)


def _ends(data: bytes, pos: int, cut: int) -> list[int]:
    """Every `);\\n` in data[pos:cut], last first (reverse searches skip faster here)."""
    found = []
    i = data.rfind(END, pos, cut)
    while i >= 0:
        found.append(i)
        i = data.rfind(END, pos, i)
    return found


def _earliest(*found: int) -> int:
    """The smallest of some found indexes (-1: not found), or -1."""
    return min((i for i in found if i >= 0), default=-1)


def _between_statements(data: bytes, pos: int, end: int) -> bool:
    """Whether the lines in data[pos:end] are what a dump writes between a table's INSERTs."""
    while pos < end:
        if not data.startswith(BETWEEN, pos):
            return False
        pos = data.index(b"\n", pos) + 1
    return True


def _line_start(data: bytes, marker: bytes, pos: int, cut: int) -> int:
    """Index of the first `marker` at the start of a line in data[pos:cut], or -1."""
    while True:
        i = data.find(marker, pos, cut)
        if i <= 0 or data[i - 1] == 0x0A:  # data[0] starts a line: feed() cuts at line ends
            return i
        pos = i + 1
