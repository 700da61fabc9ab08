"""`vigil report`: a job's runs of the period and what each destination holds; --html, seen in a real browser."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from browser import Dom, RequestTrap, colours, console_messages, dump_dom, screenshot
from gen_history import write_history
from helpers import files_job_body, vigil

SCRIPT = "<script>alert(1)</script>"


def _job_with_history(tmp_path, make_job, app_tree, runs: int = 60):
    """A real job with two real runs (one success, one failure whose error holds markup), and
    synthetic journal rows of every outcome around them."""
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest) + '[schedule]\ncron = "0 */6 * * *"\n')
    vigil("run", config=job, check=0)
    write_history(tmp_path / "state", dest, "app", runs, datetime.now(UTC) - timedelta(hours=1),
                  timedelta(hours=8), keep=3, error=f"tar: cannot open {SCRIPT}")
    # A failure whose error names a path holding markup: the error is the run's own.
    weird = tmp_path / "<script>alert(1)<" / "script>"
    text = job.read_text().replace(f'path = "{app_tree}"', f'path = "{weird}"')
    job.write_text(text)
    vigil("run", config=job, check=1)
    return job, dest


def test_report_lists_runs_and_what_each_destination_holds(tmp_path, make_job, app_tree):
    job, dest = _job_with_history(tmp_path, make_job, app_tree, runs=40)
    out = vigil("report", config=job, check=0).stdout
    assert out.startswith("app: CRITICAL, 42 run(s) from ")  # the last run failed
    for outcome in ("success", "failed", "skipped", "died", "interrupted"):
        assert f" {outcome} " in out
    assert "source:app" in out and "/usr/sbin/CRON -f" in out  # step and who started it
    backups = [p for p in (dest / "app").iterdir() if (p / "manifest.json").exists()]
    total = sum(json.loads((p / "manifest.json").read_text())["artifacts"][0]["size"] for p in backups
                if json.loads((p / "manifest.json").read_text())["job"] == "app")
    held = next(line for line in out.splitlines() if line.startswith("local "))
    assert re.split(r"\s{2,}", held)[1] == str(len(backups)) and "(full)" in held
    assert total > 0
    # The period bounds the runs: the synthetic ones are 8 h apart, the newest 9 h ago, so the last
    # day holds two of them and the two real ones.
    short = vigil("report", "--days", "1", config=job, check=0).stdout
    assert short.startswith("app: CRITICAL, 4 run(s)")


@pytest.mark.parametrize("days", ["0", "-3", "x"])
def test_report_refuses_a_bad_period_in_one_line(tmp_path, make_job, app_tree, days):
    job = make_job(files_job_body(app_tree, tmp_path / "b"))
    proc = vigil("report", "--days", days, config=job, check=2)
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1 and "--days" in proc.stderr


def test_report_of_an_unknown_job_is_a_usage_error(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "b"))
    proc = vigil("report", "nosuch", config=job, check=2)
    assert "nosuch" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _check_page(page, tmp_path, jobs: int, marks: set[str]) -> Dom:
    """The page in chromium: one plot per job at least, the outcome marks, no console message,
    no request from the page, and screenshots at desktop and phone widths that are not blank."""
    trap = RequestTrap()
    try:
        html, stderr = dump_dom(page, trap, tmp_path / "profile")
        for width, height in ((1280, 2000), (390, 1600)):
            shot = tmp_path / f"{page.stem}-{width}.png"
            stderr += screenshot(page, shot, width, height, trap, tmp_path / "profile")
            assert colours(shot) > 40, f"{shot} looks blank"
        assert console_messages(stderr) == []
        assert trap.from_page() == [], trap.requests
    finally:
        trap.close()
    dom = Dom(html)
    sections = dom.sections()
    assert len(sections) == jobs
    for _attrs, inside in sections:
        assert any(t == "svg" and "plot" in a.get("class", "").split() for t, a in inside)
    drawn = {c for a in dom.all("use", "mark") for c in a["class"].split()} - {"mark"}
    assert marks <= drawn
    assert dom.all("script") == [] and dom.all("link") == [] and dom.all("img") == []
    return dom


def test_html_report_in_a_real_browser(tmp_path, make_job, app_tree):
    job, _ = _job_with_history(tmp_path, make_job, app_tree)
    page = tmp_path / "report.html"
    vigil("report", "--html", str(page), config=job, check=0)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "url(" not in text  # nothing to fetch
    dom = _check_page(page, tmp_path, 1, {"success", "failed", "skipped", "died", "interrupted"})
    [(_attrs, inside)] = dom.sections()
    plots = [a for t, a in inside if t == "svg" and "plot" in a.get("class", "").split()]
    assert {"size", "duration"} <= {c for p in plots for c in p["class"].split()}
    assert all(p.get("viewbox") for p in plots)  # scales to its container
    # The markup in an error is text on the page, never an element.
    assert SCRIPT in "".join(dom.text)
    assert "CRITICAL" in "".join(dom.text)  # the current health


def test_html_report_can_go_to_stdout(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "b"))
    vigil("run", config=job, check=0)
    out = vigil("report", "--html", "-", config=job, check=0).stdout
    assert out.startswith("<!DOCTYPE html>") and out.count('<section class="job"') == 1


def test_html_report_that_cannot_be_written_is_one_line_exit_2(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "b"))
    proc = vigil("report", "--html", str(tmp_path / "nowhere" / "x.html"), config=job, check=2)
    assert "cannot write" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # To stdout, nothing claims a file named "-" was written.
    out = vigil("report", "--html", "-", config=job, check=0)
    assert "wrote" not in out.stderr


def test_html_report_never_writes_through_a_planted_link(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "b"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / ".r.html.tmp").symlink_to(victim)
    vigil("report", "--html", str(tmp_path / "r.html"), config=job, check=0)
    assert victim.read_text() == "precious\n" and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_a_died_run_has_no_duration_and_old_unfinished_rows_stay_out(tmp_path, make_job, app_tree):
    from gen_history import backup_id

    from vigil.state.journal import Journal, Outcome, RunRow

    job = make_job(files_job_body(app_tree, tmp_path / "b"))
    vigil("run", config=job, check=0)
    now = datetime.now(UTC)
    died_at = now - timedelta(days=2)
    ancient = now - timedelta(days=90)
    with Journal(tmp_path / "state") as journal:
        # Found dead two days after it started: that is no duration of the run.
        journal.insert_run(RunRow(backup_id(died_at, 1), "app", 4242, "web1", died_at.timestamp()))
        journal.finish_run(backup_id(died_at, 1), Outcome.DIED, step="source:app", error="died", warnings=[],
                           nbytes=None, backup_id=None, finished_at=now.timestamp() - 60)
        journal.insert_run(RunRow(backup_id(ancient, 2), "app", 4243, "web1", ancient.timestamp()))
    out = vigil("report", config=job, check=0).stdout
    # The row still open from 90 days ago is outside the 30-day period (health still names it).
    assert out.startswith("app: CRITICAL, 2 run(s)")
    assert not [line for line in out.splitlines() if line.startswith(ancient.strftime("%Y-%m-%d"))]
    [died] = [line for line in out.splitlines() if line.startswith(died_at.strftime("%Y-%m-%d"))]
    assert re.split(r"\s{2,}", died)[3] == "-"
    page = tmp_path / "r.html"
    vigil("report", "--html", str(page), config=job, check=0)
    text = page.read_text()
    assert "died, took -" in text and "died, took 2d" not in text
    # Its mark is on the size plot's baseline, and off the duration plot.
    duration_plot = text[text.index('class="plot duration"'):]
    assert " died" not in duration_plot[:duration_plot.index("</svg>")]
