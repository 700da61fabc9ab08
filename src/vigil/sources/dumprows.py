"""Row counts read from a mysqldump / mariadb-dump stream as it passes.

MariaDB's dump tool writes extended INSERTs one row per line (MDEV-25152):

    LOCK TABLES `orders` WRITE;
    /*!40000 ALTER TABLE `orders` DISABLE KEYS */;
    INSERT INTO `orders` VALUES (1,'a'),        <- or "VALUES" alone, rows below
    (2,'b),(c');
    /*!40000 ALTER TABLE `orders` ENABLE KEYS */;
    UNLOCK TABLES;

A value never holds a raw newline (the dump escapes it as \\n), so in a
table's data every line of an INSERT statement is one row, and a statement
ends at the last line ending in `);` before the next INSERT or the UNLOCK.
Counting newlines is C-speed work; the server's COUNT(*) would scan every
table a second time. The scans here use long markers (fast to search for) and
only look back a few lines for a statement's end.

MySQL's mysqldump and older MariaDB tools write a statement on one line,
`(1,'a'),(2,'b')`, where a `),(` may also sit inside a string. A dump in
which no statement spans lines and some line holds `),(` cannot be counted
this way: `uncertain` names those tables, for the caller to count on the
server.
"""

from __future__ import annotations

LOCK = b"LOCK TABLES `"
UNLOCK = b"UNLOCK TABLES;"
END = b");\n"
TAIL = 4096  # bytes kept from before each block: a statement's end may lie there


class DumpRowCounter:
    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self._ambiguous: set[str] = set()
        self._broken: set[str] = set()
        self._one_row_per_line = False  # seen a statement over several lines
        self._table: str | None = None  # inside this table's LOCK ... UNLOCK
        self._insert = b""  # how this table's INSERT lines start
        self._in_statement = False
        self._lines = 0  # lines of the open statement counted so far (and any after its end)
        self._row_on_insert_line = True
        self._carry = b""  # an incomplete last line
        self._tail = b""  # the last TAIL bytes before the block being read

    def feed(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        cut = data.rfind(b"\n") + 1  # whole lines only: every marker is a line start
        self._carry = data[cut:]
        pos = 0
        while pos < cut:
            pos = self._step(data, pos, cut)
        self._tail = (self._tail + data[max(0, cut - TAIL):cut])[-TAIL:]

    def _step(self, data: bytes, pos: int, cut: int) -> int:
        if self._table is None:
            i = _line_start(data, LOCK, pos, cut)
            return cut if i < 0 else self._lock(data, i)
        if not self._in_statement:
            insert = _line_start(data, self._insert, pos, cut)
            stop = _line_start(data, UNLOCK, pos, cut if insert < 0 else insert)
            # A LOCK line before this table's UNLOCK is not the dump's (it sits in a stored
            # program's multi-line string): the next real one ends this table.
            lock = _line_start(data, LOCK, pos, _first(stop, insert, cut))
            if lock >= 0:
                return self._lock(data, lock)
            if stop >= 0:
                self._table = None
                return stop + len(UNLOCK)
            if insert < 0:
                return cut
            self._in_statement, self._lines = True, 0
            self._row_on_insert_line = data[insert + len(self._insert)] != 0x0A
            return insert + 1  # past the statement's own INSERT, which is not its end (and no newline)
        # Rows start with "(": the next INSERT or the UNLOCK line is where the statement is over.
        insert = _line_start(data, self._insert, pos, cut)
        bound = _first(_line_start(data, UNLOCK, pos, cut if insert < 0 else insert), insert, -1)
        if bound < 0:
            self._lines += data.count(b"\n", pos, cut)
            return cut
        self._lines += data.count(b"\n", pos, bound)
        self._close_statement(data, pos, bound)
        return bound

    def _close_statement(self, data: bytes, start: int, bound: int) -> None:
        """The statement ends at the last `);` line before `bound`: drop the lines after it."""
        assert self._table is not None
        end = data.rfind(END, start, bound)
        if end >= 0:
            after = data.count(b"\n", end + len(END), bound)
        else:
            in_tail = self._tail.rfind(END) if start == 0 else -1
            if in_tail < 0:  # not a statement as this module knows them
                self._broken.add(self._table)
                self._in_statement = False
                return
            after = self._tail.count(b"\n", in_tail + len(END)) + data.count(b"\n", 0, bound)
        lines = self._lines - after
        rows = lines if self._row_on_insert_line else lines - 1
        if lines > 1:
            self._one_row_per_line = True
        elif end < 0 or data.find(b"),(", start, end) >= 0:
            self._ambiguous.add(self._table)  # one line: one row, or many in MySQL's layout
        self.rows[self._table] += rows
        self._in_statement = False

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
        return self._broken | (set() if self._one_row_per_line else self._ambiguous)


def _first(a: int, b: int, default: int) -> int:
    """The smaller of two found indexes (-1: not found), else default."""
    found = [x for x in (a, b) if x >= 0]
    return min(found) if found else default


def _line_start(data: bytes, marker: bytes, pos: int, cut: int) -> int:
    """Index of the first `marker` at the start of a line in data[pos:cut], or -1."""
    while True:
        i = data.find(marker, pos, cut)
        if i <= 0 or data[i - 1] == 0x0A:  # data[0] starts a line: feed() cuts at line ends
            return i
        pos = i + 1
