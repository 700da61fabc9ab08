"""A Laravel app's .env as a job file: what is taken over, what is said, what is never copied."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.actions.init import laravel_job, slug, toml_value
from vigil.config.load import load_job_file
from vigil.config.schema import EmailNotify, FilesSource, Job, MysqlSource, PostgresSource, SqliteSource
from vigil.errors import ConfigError

SECRETS = {"APP_KEY": "base64:S2VlcE1lT3V0T2ZUaGVKb2JGaWxlMTIzNDU2Nzg5MA==", "DB_PASSWORD": "db-pw #with 'quotes'",
           "MAIL_PASSWORD": "mail-pw-9f8e7d", "REDIS_PASSWORD": "redis-pw-1a2b3c",
           "AWS_SECRET_ACCESS_KEY": "aws-secret-0x77"}
MYSQL = {"APP_NAME": "Api Gateway", "DB_CONNECTION": "mysql", "DB_HOST": "10.0.0.5", "DB_PORT": "3307",
         "DB_DATABASE": "api_gateway", "DB_USERNAME": "gateway", "MAIL_MAILER": "smtp",
         "MAIL_HOST": "smtp.example.com", "MAIL_PORT": "587", "MAIL_USERNAME": "postmaster",
         "MAIL_ENCRYPTION": "tls", "MAIL_FROM_ADDRESS": "noreply@example.com", **SECRETS}


def load(app: Path, text: str) -> Job:
    """The job as vigil's own loader reads it (its env_file must exist)."""
    (app / ".env").touch()
    path = app / "job.toml"
    path.write_text(text)
    return load_job_file(path)


def test_mysql_app_becomes_a_complete_job(tmp_path):
    result = laravel_job(tmp_path, MYSQL, notify_email="ops@example.com", host="web1")
    assert result.name == "api-gateway"
    job = load(tmp_path, result.text)
    files, db = job.source
    assert isinstance(files, FilesSource) and files.path == tmp_path
    assert files.exclude == ["vendor/", "node_modules/", "storage/framework/cache/", "storage/framework/sessions/",
                             "storage/framework/views/", "bootstrap/cache/"]
    assert files.volatile == ["storage/logs/"]
    assert isinstance(db, MysqlSource)
    assert (db.host, db.port, db.user, db.database, db.password_env) == \
        ("10.0.0.5", 3307, "gateway", "api_gateway", "DB_PASSWORD")
    assert job.env_file == tmp_path / ".env" and job.laravel.app == tmp_path
    assert job.schedule.cron and job.health.grace.total_seconds() == 3 * 3600
    assert (job.retention.keep_daily, job.retention.keep_weekly, job.retention.keep_monthly) == (7, 4, 6)
    assert [d.type for d in job.destination] == ["local"]
    [mail] = job.notify
    assert isinstance(mail, EmailNotify)
    assert (mail.smtp_host, mail.smtp_port, mail.starttls, mail.ssl, mail.username, mail.password_env) == \
        ("smtp.example.com", 587, True, False, "postmaster", "MAIL_PASSWORD")
    assert (mail.from_, mail.to) == ("noreply@example.com", ["ops@example.com"])
    assert "failure" in mail.on


def test_no_secret_value_is_ever_written(tmp_path):
    for connection in ("mysql", "pgsql", "sqlite"):
        text = laravel_job(tmp_path, {**MYSQL, "DB_CONNECTION": connection}, notify_email="ops@example.com").text
        for key, secret in SECRETS.items():
            assert secret not in text, key


@pytest.mark.parametrize(("connection", "kind", "port"), [("pgsql", PostgresSource, 5432), ("mariadb", MysqlSource, 3306)])
def test_other_engines_and_default_ports(tmp_path, connection, kind, port):
    env = {**MYSQL, "DB_CONNECTION": connection, "DB_PORT": ""}
    job = load(tmp_path, laravel_job(tmp_path, env).text)
    assert isinstance(job.source[1], kind) and job.source[1].port == port


def test_sqlite_app_excludes_its_database_from_the_files_source(tmp_path):
    app = tmp_path / "my app [v2]"
    app.mkdir()
    env = {"DB_CONNECTION": "sqlite", "DB_DATABASE": "database/data base.sqlite"}
    job = load(app, laravel_job(app, env).text)
    files, db = job.source
    assert isinstance(db, SqliteSource) and db.path == app / "database/data base.sqlite"
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(files.exclude)
    assert spec.match_file("database/data base.sqlite")
    assert not spec.match_file("database/data base.sqlite.bak") and not spec.match_file("database/other.sqlite")


def test_sqlite_default_file_is_laravels(tmp_path):
    job = load(tmp_path, laravel_job(tmp_path, {"DB_CONNECTION": "sqlite"}).text)
    assert job.source[1].path == tmp_path / "database/database.sqlite"


@pytest.mark.parametrize("mailer", ["log", "sendmail", "ses", None])
def test_a_mailer_that_is_not_smtp_is_said_and_writes_no_channel(tmp_path, mailer):
    env = {**MYSQL, "MAIL_MAILER": mailer} if mailer else {k: v for k, v in MYSQL.items() if k != "MAIL_MAILER"}
    result = laravel_job(tmp_path, env, notify_email="ops@example.com")
    assert "[[notify]]" not in result.text
    assert any(f"MAIL_MAILER is {mailer or 'not set'}, not smtp" in note for note in result.notes)


def test_tls_as_laravels_mailer_chooses_it(tmp_path):
    """TLS from the first byte on port 465 or with scheme smtps, whatever MAIL_ENCRYPTION says;
    STARTTLS on any other port (Laravel's mailer upgrades whenever the server offers it), and so
    never a password over a plain connection."""
    for extra in ({"MAIL_ENCRYPTION": "", "MAIL_SCHEME": "smtps"}, {"MAIL_ENCRYPTION": "", "MAIL_PORT": "465"},
                  {"MAIL_ENCRYPTION": "tls", "MAIL_PORT": "465"}):
        job = load(tmp_path, laravel_job(tmp_path, {**MYSQL, **extra}, notify_email="a@b.c").text)
        assert job.notify[0].ssl and not job.notify[0].starttls, extra
    for extra in ({"MAIL_ENCRYPTION": "ssl"}, {"MAIL_ENCRYPTION": "null"}, {"MAIL_ENCRYPTION": ""}):
        job = load(tmp_path, laravel_job(tmp_path, {**MYSQL, **extra}, notify_email="a@b.c").text)
        assert job.notify[0].starttls and not job.notify[0].ssl, extra


def test_db_url_wins_over_db_keys_and_an_in_memory_sqlite_is_no_source(tmp_path):
    env = {**MYSQL, "DB_URL": "mysql://shop:url-pw-55@db.internal:3307/prod"}
    result = laravel_job(tmp_path, env)
    job = load(tmp_path, result.text)
    db = job.source[1]
    assert (db.host, db.port, db.user, db.database) == ("db.internal", 3307, "shop", "prod")
    assert "url-pw-55" not in result.text
    result = laravel_job(tmp_path, {**MYSQL, "DB_CONNECTION": "sqlite", "DB_DATABASE": ":memory:"})
    assert 'type = "sqlite"' not in result.text and any(":memory:" in n for n in result.notes)
    with pytest.raises(ConfigError, match="DB_PORT"):
        laravel_job(tmp_path, {**MYSQL, "DB_PORT": "\u00b2"})


def test_unsupported_connection_is_said(tmp_path):
    result = laravel_job(tmp_path, {**MYSQL, "DB_CONNECTION": "sqlsrv"})
    assert "[[source]]" in result.text and 'type = "mysql"' not in result.text
    assert any("DB_CONNECTION=sqlsrv" in note for note in result.notes)


def test_name_from_app_name_or_directory(tmp_path):
    assert laravel_job(tmp_path, {**MYSQL, "APP_NAME": "Shop & Co!"}).name == "shop-co"
    app = tmp_path / "billing-api"
    assert laravel_job(app, {k: v for k, v in MYSQL.items() if k != "APP_NAME"}).name == "billing-api"
    assert slug("  ") == ""


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_every_string_round_trips_through_toml(text):
    assert tomllib.loads(f"k = {toml_value(text)}")["k"] == text


def test_paths_with_quotes_and_spaces_round_trip(tmp_path):
    app = tmp_path / 'the "app" \\ dir #1'
    app.mkdir()
    job = load(app, laravel_job(app, MYSQL, backup_dir=str(tmp_path / "back 'ups'")).text)
    assert job.source[0].path == app and job.env_file == app / ".env"
    assert str(job.destination[0].path) == str(tmp_path / "back 'ups'")


def test_laravel_null_means_unset(tmp_path):
    """Laravel's default .env says MAIL_USERNAME=null: no login, no password, no TLS."""
    env = {**MYSQL, "MAIL_USERNAME": "null", "MAIL_PASSWORD": "null", "MAIL_ENCRYPTION": "null", "MAIL_PORT": "2525",
           "DB_PORT": "(null)"}
    job = load(tmp_path, laravel_job(tmp_path, env, notify_email="ops@example.com").text)
    mail = job.notify[0]
    assert (mail.username, mail.password_env, mail.starttls, mail.ssl, mail.smtp_port) == (None, None, False, False, 2525)
    assert job.source[1].port == 3306
