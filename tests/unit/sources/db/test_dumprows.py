"""Row counts read from a mariadb-dump stream (one row per line inside extended INSERTs)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.sources.db.dumprows import DumpRowCounter

HEAD = b"-- MariaDB dump 10.19-10.11.14-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
FOOT = b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\n-- Dump completed on 2026-11-27  7:22:31\n"


def table(name: str, statements: list[list[bytes]], *, one_line: bool = False, rows_below: bool = False) -> bytes:
    """A table's data section as mariadb-dump writes it: rows_below as 10.11 does ("VALUES" alone on
    the INSERT line), else with the first row on it; with one_line, as MySQL's mysqldump does."""
    quoted = name.replace("`", "``").encode()
    out = [b"--\n-- Dumping data for table `" + quoted + b"`\n--\n\n",
           b"LOCK TABLES `" + quoted + b"` WRITE;\n",
           b"/*!40000 ALTER TABLE `" + quoted + b"` DISABLE KEYS */;\n"]
    for rows in statements:
        sep = b"," if one_line else b",\n"
        out.append(b"INSERT INTO `" + quoted + b"` VALUES" + (b"\n" if rows_below else b" ") + sep.join(rows) + b";\n")
    out += [b"/*!40000 ALTER TABLE `" + quoted + b"` ENABLE KEYS */;\n", b"UNLOCK TABLES;\n"]
    return b"".join(out)


# Strings as the dump escapes them: a raw newline never, but ),( ); and INSERT text freely.
HOSTILE = [b"(1,'x),(y')", b"(2,'a);\\nINSERT INTO `t` VALUES (9);')", b"(3,NULL)", b"(4,'\\'),(\\\\')",
           b"(5,'\xc3\xa9\\n\\r\\t')", b"(6,_binary 0x0A3B29)"]

TRIGGER = (b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER `t_audit` AFTER INSERT ON `t` FOR EACH ROW BEGIN\n"
           b"INSERT INTO `t` VALUES (99,'from a trigger');\nLOCK TABLES `ghost` WRITE;\nEND */;;\nDELIMITER ;\n")


def count(stream: bytes, cuts: list[int] = ()) -> DumpRowCounter:
    counter = DumpRowCounter()
    start = 0
    for cut in sorted(cuts) + [len(stream)]:
        counter.feed(stream[start:cut])
        start = cut
    return counter


DUMP = (HEAD + table("t", [HOSTILE, HOSTILE[:2], [b"(7,'one row')"]]) + TRIGGER
        + table("empty", []) + table("we`ird name é", [[b"(1)", b"(2)"]])
        + table("below", [HOSTILE, [b"(1,'x),(y')"], HOSTILE[3:]], rows_below=True) + FOOT)


ROWS = {"t": 9, "empty": 0, "we`ird name é": 2, "below": 10}


def test_counts_rows_of_every_table_and_nothing_outside_their_data():
    counter = count(DUMP)
    # "ghost" is a LOCK line inside the trigger's text: the caller keeps only real tables.
    assert counter.rows == {**ROWS, "ghost": 0}
    assert counter.uncertain - {"ghost"} == set()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(DUMP)), max_size=12))
def test_the_counts_do_not_depend_on_where_the_stream_is_cut(cuts):
    counter = count(DUMP, cuts)
    assert counter.rows == {**ROWS, "ghost": 0}
    assert counter.uncertain - {"ghost"} == set()


def test_one_row_statements_alone_are_exact_in_either_layout():
    counter = count(HEAD + table("t", [[b"(1,'a')"], [b"(2,'b')"]]) + FOOT)
    assert counter.rows == {"t": 2} and counter.uncertain == set()


def test_mysql_one_line_statements_are_left_to_the_server_when_a_string_could_hide_a_separator():
    # MySQL's layout: a `),(` inside a string and one between rows look the same.
    stream = HEAD + table("t", [HOSTILE[:2]], one_line=True) + table("u", [[b"(1)"]], one_line=True) + FOOT
    assert count(stream).uncertain == {"t"}
    assert count(stream).rows["u"] == 1


def test_a_multi_line_statement_anywhere_settles_the_layout_for_the_whole_dump():
    stream = HEAD + table("a", [[b"(1,'x),(y')"]]) + table("b", [[b"(1)", b"(2)"]]) + FOOT
    counter = count(stream)
    assert counter.rows == {"a": 1, "b": 2} and counter.uncertain == set()


@pytest.mark.parametrize("layout, statement", [
    ("--complete-insert", b"INSERT INTO `t` (`id`, `v`) VALUES (1,'a'),\n(2,'b');\n"),
    ("--complete-insert, one row", b"INSERT INTO `t` (`id`, `v`) VALUES (1,'a');\n"),
    ("--insert-ignore", b"INSERT  IGNORE INTO `t` VALUES (1,'a'),\n(2,'b');\n"),
    ("--replace", b"REPLACE INTO `t` VALUES\n(1,'a'),\n(2,'b');\n"),
])
def test_statements_of_another_form_leave_their_table_to_the_server(layout, statement):
    # Options in a server's my.cnf [mysqldump] group reach vigil's dump too.
    data = table("t", []).replace(b"/*!40000 ALTER TABLE `t` ENABLE", statement + b"/*!40000 ALTER TABLE `t` ENABLE")
    stream = HEAD + data + table("u", [[b"(1)", b"(2)"]]) + FOOT
    counter = count(stream)
    assert counter.uncertain == {"t"} and counter.rows["u"] == 2


def test_a_statement_that_never_ends_is_uncertain():
    # A last row not closed by ");" would run the count into whatever follows.
    stream = HEAD + table("t", [[b"(1)", b"(2)"]]).replace(b"(2);", b"(2),") + FOOT
    assert "t" in count(stream).uncertain


def test_no_autocommit_lines_between_statements_are_not_rows():
    data = table("t", [[b"(1)", b"(2)"], [b"(3)"]])
    data = data.replace(b"KEYS */;\nINSERT", b"KEYS */;\nset autocommit=0;\nINSERT", 1).replace(
        b"UNLOCK TABLES;", b"commit;\nUNLOCK TABLES;")
    counter = count(HEAD + data + FOOT)
    assert counter.rows == {"t": 3} and counter.uncertain == set()


def test_a_row_longer_than_many_chunks_is_one_row():
    # A big BLOB's row is one line of megabytes, read in many chunks before its newline.
    blob = b"(1,0x" + b"ab" * (3 << 20) + b")"
    stream = HEAD + table("files", [[blob, b"(2,NULL)"], [blob]]) + FOOT
    counter = count(stream, list(range(0, len(stream), 64 << 10)))
    assert counter.rows == {"files": 3} and counter.uncertain == set()


@pytest.mark.parametrize("chunk", [4096, 65536, 1 << 20])
def test_narrow_and_wide_rows_in_turn_are_counted_exactly(chunk):
    # Long rows are counted with memchr jumps and short ones byte by byte; a dump that
    # switches between them, within a table and from table to table, counts the same.
    narrow = [b"(%d)" % i for i in range(30000)]
    wide = [b"(%d,'%s')" % (i, b"w" * 180) for i in range(6000)]
    dump = (HEAD + table("narrow", [narrow[:15000], narrow[15000:]]) + table("wide", [wide[:2500], wide[2500:]])
            + table("mixed", [wide[:3000], narrow, wide[3000:]]) + table("tail", [narrow[:5]]) + FOOT)
    counter = count(dump, list(range(chunk, len(dump), chunk)))
    assert counter.rows == {"narrow": 30000, "wide": 6000, "mixed": 36000, "tail": 5}
    assert counter.uncertain == set()
