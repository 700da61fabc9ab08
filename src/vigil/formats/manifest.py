"""Backup ids and the manifest that commits a backup (SPEC §4)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any


FORMAT = 1
MANIFEST = "manifest.json"
BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def new_backup_id(now: datetime) -> str:
    """UTC start time plus 6 random hex digits: two runs in one second never collide."""
    return f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def is_backup_id(text: str) -> bool:
    return bool(BACKUP_ID.fullmatch(text))


@dataclass
class Artifact:
    name: str
    source: str
    type: str  # files | index | sqlite | postgres | mysql
    size: int
    sha256: str
    compression: str = "zstd"
    encrypted: bool = False
    entries: int | None = None  # files archives: number of entries
    bytes: int | None = None  # files archives: uncompressed content bytes
    database: str | None = None
    tables: dict[str, int] | None = None  # row counts at backup time
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


@dataclass
class Manifest:
    id: str
    job: str
    host: str
    vigil_version: str
    started_at: str
    finished_at: str
    artifacts: list[Artifact]
    warnings: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    format: int = FORMAT

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    @property
    def started(self) -> datetime:
        started = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        return started if started.tzinfo else started.replace(tzinfo=timezone.utc)

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "id": self.id,
            "job": self.job,
            "host": self.host,
            "vigil_version": self.vigil_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "size": self.size,
            "artifacts": [a.to_json() for a in self.artifacts],
            "warnings": self.warnings,
            "sources": self.sources,
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def loads(cls, data: bytes | str) -> "Manifest":
        """Parse a manifest; raise ValueError with a reason when it is not one."""
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT:
                raise ValueError(f"unsupported manifest format {d.get('format')!r}")
            known = set(Artifact.__dataclass_fields__)
            arts = [
                Artifact(**{k: v for k, v in a.items() if k in known},
                         extra={k: v for k, v in a.items() if k not in known})
                for a in d["artifacts"]
            ]
            return cls(
                id=d["id"], job=d["job"], host=d["host"], vigil_version=d["vigil_version"],
                started_at=d["started_at"], finished_at=d["finished_at"], artifacts=arts,
                warnings=list(d.get("warnings", [])), sources=list(d.get("sources", [])),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a valid manifest ({exc.__class__.__name__}: {exc})") from None
