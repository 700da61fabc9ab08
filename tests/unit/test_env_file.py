"""A job's env_file read as Laravel reads its .env: quoting, comments, `${VAR}`, the environment first."""

from __future__ import annotations

import textwrap

from vigil.config.secrets import read_env_file

LARAVEL_ENV = textwrap.dedent("""\
    # Laravel's .env, as `php artisan` reads it
    APP_NAME="Api Gateway"
    APP_URL=https://api.example.com
    export DB_HOST=127.0.0.1
    DB_PASSWORD='pa$$w0rd ${NOT_EXPANDED} #not a comment'
    DB_OTHER="dq \\"quoted\\" #not a comment"
    DB_PLAIN=plain # a comment
    MAIL_FROM_ADDRESS="hello@${APP_HOST}"
    MAIL_FROM_NAME="${APP_NAME}"
    MAIL_NEWLINE="two\\nlines"
    FROM_ENV=${VIGIL_TEST_FROM_ENV}
    APP_HOST=late.example
    EMPTY=
    BARE
    """)


def test_laravel_quoting_comments_and_references(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_TEST_FROM_ENV", "from the environment")
    monkeypatch.setenv("APP_HOST", "env.example")  # set before: it wins, as in Laravel
    path = tmp_path / ".env"
    path.write_text(LARAVEL_ENV)
    got = read_env_file(path)
    assert got["APP_NAME"] == "Api Gateway"
    assert got["DB_HOST"] == "127.0.0.1"
    # Single quotes are literal in Laravel: no ${} expansion, no comment, $$ stays.
    assert got["DB_PASSWORD"] == "pa$$w0rd ${NOT_EXPANDED} #not a comment"
    assert got["DB_OTHER"] == 'dq "quoted" #not a comment'
    assert got["DB_PLAIN"] == "plain"
    assert got["MAIL_FROM_ADDRESS"] == "hello@env.example"
    assert got["MAIL_FROM_NAME"] == "Api Gateway"
    assert got["MAIL_NEWLINE"] == "two\nlines"
    assert got["FROM_ENV"] == "from the environment"
    assert got["EMPTY"] == "" and got["BARE"] is None


def test_reference_to_an_earlier_line_and_to_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET_ANYWHERE", raising=False)
    path = tmp_path / ".env"
    path.write_text('A=one\nB="${A}-two"\nC=${UNSET_ANYWHERE}\nD="${UNSET_ANYWHERE:-fallback}"\n')
    assert read_env_file(path) == {"A": "one", "B": "one-two", "C": "", "D": "fallback"}


def test_a_secret_the_app_reads_as_nothing_is_no_password(monkeypatch, tmp_path):
    """Laravel's env() reads `null` and `empty` (bare or in parentheses) as no value: the
    database user without a password must not be tried with the word."""
    from vigil.config.secrets import EnvVar, env_value

    monkeypatch.delenv("DB_PASSWORD", raising=False)
    for word in ("null", "(null)", "empty", "(empty)", "NULL"):
        assert env_value(EnvVar.of("DB_PASSWORD", {"DB_PASSWORD": word}, tmp_path / ".env")) == ""
    assert env_value(EnvVar.of("DB_PASSWORD", {"DB_PASSWORD": "nullable"}, tmp_path / ".env")) == "nullable"
    monkeypatch.setenv("DB_PASSWORD", "null")  # the process environment is taken as it is
    assert env_value(EnvVar.of("DB_PASSWORD", {"DB_PASSWORD": "x"}, tmp_path / ".env")) == "null"
