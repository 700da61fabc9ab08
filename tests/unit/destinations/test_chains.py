"""A destination's view of incremental chains: a broken one is a damaged backup (SPEC §11)."""

from __future__ import annotations

from vigil.destinations.base import DamagedBackup, Scan, check_chains, newest_id
from vigil.formats.manifest import Manifest


def backup(backup_id: str, chain: list[str] | None = None) -> Manifest:
    t = f"{backup_id[:4]}-{backup_id[4:6]}-{backup_id[6:8]}T{backup_id[9:11]}:{backup_id[11:13]}:{backup_id[13:15]}Z"
    return Manifest(id=backup_id, job="app", host="h", vigil_version="1", started_at=t, finished_at=t, artifacts=[],
                    kind="incremental" if chain else "full", base=chain[-1] if chain else None, chain=chain or [])


F, I1, I2, G = "20260101T000000Z-000001", "20260102T000000Z-000002", "20260103T000000Z-000003", \
    "20260104T000000Z-000004"


def test_complete_chains_stay_complete() -> None:
    scan = Scan([backup(I2, [F, I1]), backup(I1, [F]), backup(F)], [])
    assert check_chains(scan) is scan


def test_a_missing_or_damaged_link_breaks_every_backup_after_it() -> None:
    scan = check_chains(Scan([backup(G), backup(I2, [F, I1]), backup(I1, [F])], []))
    assert [m.id for m in scan.complete] == [G]
    assert {d.backup_id: d.reason for d in scan.damaged} == {
        I1: f"chain broken: base {F} is missing", I2: f"chain broken: base {F} is missing"}
    scan = check_chains(Scan([backup(I2, [F, I1]), backup(F)], [DamagedBackup(I1, "manifest.json: not JSON")]))
    assert [m.id for m in scan.complete] == [F]
    assert scan.damaged[-1] == DamagedBackup(I2, f"chain broken: base {I1} is damaged", (F, I1))


def test_newest_goes_by_time_and_counts_damaged_backups() -> None:
    same_second = ["20260105T000000Z-ffffff", "20260105T000000Z-000000"]
    first, second = backup(same_second[0]), backup(same_second[1])
    second.started_at = "2026-01-05T00:00:00.900Z"  # started later within the second, smaller random part
    assert newest_id([Scan([first, second], [])]) == same_second[1]
    assert newest_id([Scan([backup(F)], [DamagedBackup(G, "x")])]) == G
    assert newest_id([Scan([], [])]) is None
