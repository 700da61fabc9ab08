"""Which privilege lets mariadb-dump/mysqldump read routines, by server; schema grants' LIKE patterns."""

from __future__ import annotations

import pytest

from vigil.sources.db.mysql import _like, _routine_privilege


@pytest.mark.parametrize(("text", "pattern", "matches"), [
    ("app", "app", True), ("app_db", "app\\_db", True), ("appxdb", "app\\_db", False), ("appxdb", "app_db", True),
    ("shop_v2", "shop%", True), ("shop", "shop%", True), ("other", "shop%", False), ("a%b", "a\\%b", True),
    ("mysql", "%", True), ("APP", "app", False),
])
def test_schema_grant_patterns(text, pattern, matches):
    assert _like(text, pattern) is matches


@pytest.mark.parametrize(("version", "glob", "on_mysql", "on_proc", "want"), [
    ("10.11.19-MariaDB-0+deb12u1", set(), set(), set(), "SELECT on mysql.proc"),
    ("10.11.19-MariaDB", set(), set(), {"SELECT"}, None),
    ("10.6.1-MariaDB", {"SELECT"}, {"SELECT"}, set(), None),
    ("11.4.2-MariaDB", set(), set(), set(), "SHOW CREATE ROUTINE"),
    ("11.4.2-MariaDB", {"SHOW CREATE ROUTINE"}, set(), set(), None),
    ("8.0.36", set(), set(), set(), "SHOW_ROUTINE"),
    ("8.4.0", {"SHOW_ROUTINE"}, set(), set(), None),
    ("8.0.36", {"SELECT"}, {"SELECT"}, set(), None),
    ("5.7.44-log", set(), set(), set(), "SELECT on mysql.proc"),
])
def test_routine_privilege_by_server(version, glob, on_mysql, on_proc, want):
    got = _routine_privilege(version, glob, on_mysql, on_proc)
    assert (got[0] if got else None) == want
    if got:
        assert "{account}" in got[1] and got[1].startswith("GRANT ")
