"""Rendering events into messages (pure): subject, text body, structured fields."""

from __future__ import annotations

from typing import Any

from vigil.sizes import human_size
from vigil.state.journal import Outcome, RunRow
from vigil.timeutil import format_duration, iso

OUTCOME_EVENT = {Outcome.SUCCESS: "success", Outcome.FAILED: "failure", Outcome.INTERRUPTED: "failure",
                 Outcome.DIED: "failure", Outcome.SKIPPED: "skipped"}
SUBJECT_WORD = {"success": "OK", "failure": "FAILED", "skipped": "SKIPPED", "unhealthy": "UNHEALTHY",
                "recovered": "RECOVERED", "test": "TEST"}
SUBJECT_MAX = 200


def subject(event: str, job: str, host: str, summary: str) -> str:
    line = f"[vigil] {SUBJECT_WORD[event]} {job}@{host}: {' '.join(summary.split())}"
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 1] + "…"


def run_message(row: RunRow, extra: dict[str, Any]) -> dict[str, Any]:
    """The payload of a run's outcome notification."""
    event = OUTCOME_EVENT[row.outcome]
    committed = extra.get("committed_on") or []
    duration = (row.finished_at - row.started_at) if row.finished_at else None
    if row.outcome == Outcome.SUCCESS:
        summary = f"backup {row.backup_id} complete ({human_size(row.bytes)} in {format_duration(duration or 0)})"
        if row.warnings:
            summary += f", {len(row.warnings)} warning(s)"
    else:
        summary = row.error or row.outcome
    lines = [
        f"Job:       {row.job}",
        f"Host:      {row.host}",
        f"Run:       {row.run_id} (pid {row.pid})",
        f"Outcome:   {row.outcome}",
    ]
    if row.outcome != Outcome.SUCCESS:
        lines.append(f"Step:      {row.step or '-'}")
        lines.append(f"Error:     {row.error or '-'}")
    lines += [
        f"Started:   {iso(row.started_at)}",
        f"Duration:  {format_duration(duration) if duration is not None else '-'}",
        f"Size:      {human_size(row.bytes)}",
    ]
    if row.outcome != Outcome.SKIPPED:
        lines.append(f"Committed: {', '.join(committed) if committed else 'nothing was committed'}")
    if row.started_by:
        # Who started the run: two different starters in two mails are a duplicate schedule.
        lines.append(f"Started by: {row.started_by}")
        lines += [f"            via {parent}" for parent in row.started_by_chain[1:]]
    if row.warnings:
        lines.append(f"Warnings ({len(row.warnings)}):")
        lines += [f"  - {w}" for w in row.warnings[:100]]
    tail = extra.get("log_tail") or ""
    if tail:
        lines += ["", "Log (last lines):", *[f"  {line}" for line in tail.splitlines()]]
    return {
        "event": event,
        "job": row.job,
        "host": row.host,
        "run_id": row.run_id,
        "outcome": row.outcome,
        "step": row.step,
        "error": row.error,
        "warnings": row.warnings,
        "bytes": row.bytes,
        "backup_id": row.backup_id,
        "committed_on": committed,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration_seconds": round(duration, 3) if duration is not None else None,
        "started_by": row.started_by,
        "started_by_chain": row.started_by_chain,
        "log_tail": tail,
        "subject": subject(event, row.job, row.host, summary),
        "body": "\n".join(lines) + "\n",
    }


def health_message(event: str, job: str, host: str, status: str, reasons: list[str]) -> dict[str, Any]:
    summary = "; ".join(reasons) if reasons else f"status {status}"
    body = "\n".join([f"Job:     {job}", f"Host:    {host}", f"Status:  {status}", "Reasons:",
                      *[f"  - {r}" for r in reasons or ["none"]]]) + "\n"
    return {"event": event, "job": job, "host": host, "status": status, "reasons": reasons,
            "run_id": None, "subject": subject(event, job, host, summary), "body": body, "log_tail": body}


def test_message(job: str, host: str) -> dict[str, Any]:
    body = f"This is a test notification from vigil for job {job} on {host}.\n"
    return {"event": "test", "job": job, "host": host, "run_id": None,
            "subject": subject("test", job, host, "test notification"), "body": body, "log_tail": body}
