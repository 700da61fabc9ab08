"""Backup ids and the manifest that commits a backup (SPEC §4)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
MAX_MANIFEST = 16 << 20  # read no more of a manifest than this: a larger one is not a real one
BACKUP_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")  # ASCII digits: \d takes any script's


def new_backup_id(now: datetime) -> str:
    """UTC start time plus 6 random hex digits: two runs in one second never collide."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def is_backup_id(text: str) -> bool:
    return bool(BACKUP_ID.fullmatch(text))


def id_time(backup_id: str) -> float:
    """The UTC second a backup id starts with, as a timestamp; 0 for one that is no date
    (`20241399T999999Z-…` has the shape of an id): older than every real backup."""
    try:
        return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0



def parse_iso(text: str) -> datetime:
    """An ISO 8601 time as vigil writes it ("...Z"); naive times are UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


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
        # Keys a source adds (`extra`) sit beside the fixed ones, as a reader expects them.
        fixed = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None and v != {}}
        return {**self.extra, **fixed}


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
    # SPEC §11: an incremental backup stores only what changed since `base`; `chain` holds
    # the ids it needs, from its full to its base, oldest first.
    kind: str = "full"
    base: str | None = None
    chain: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    @property
    def state_size(self) -> int:
        """Bytes of the state the backup stands for: a files archive counts the whole tree
        its index lists (an incremental's own archive holds only the changes), any other
        artifact its stored size. What health compares from one backup to the next."""
        total = 0
        for a in self.artifacts:
            if a.type == "files":
                state = a.extra.get("state_bytes")
                total += state if type(state) is int else a.bytes if a.bytes is not None else a.size
            elif a.type != "index":
                total += a.size
        return total

    @property
    def started(self) -> datetime:
        return parse_iso(self.started_at)

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
            "kind": self.kind,
            "base": self.base,
            "chain": self.chain,
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def loads(cls, data: bytes | str, expect_id: str | None = None, expect_job: str | None = None) -> Manifest:
        """Parse and check a manifest read from a destination; ManifestError says why it
        is not one. `expect_id` is its directory's name, `expect_job` the job it was
        listed for: a manifest that claims another place is damaged."""
        if len(data) > MAX_MANIFEST:
            raise ManifestError(f"larger than {MAX_MANIFEST} bytes")
        try:
            d = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ManifestError(f"not JSON ({exc.__class__.__name__}: {exc})") from None
        m = cls._from_dict(_obj(d, "manifest"))
        if expect_id is not None and m.id != expect_id:
            raise ManifestError(f"id {m.id!r} is not its directory's name {expect_id!r}")
        if expect_job is not None and m.job != expect_job:
            raise ManifestError(f"job {m.job!r} is not {expect_job!r}")
        return m

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Manifest:
        if d.get("format") != FORMAT or isinstance(d.get("format"), bool):
            raise ManifestError(f"unsupported manifest format {d.get('format')!r}")
        backup_id = _get(d, "id", str)
        if not is_backup_id(backup_id):
            raise ManifestError(f"id {backup_id!r} is not a backup id")
        arts = [_artifact(_obj(a, "artifacts entry")) for a in _get(d, "artifacts", list)]
        names = [a.name for a in arts]
        if len(set(names)) != len(names):
            raise ManifestError("an artifact name is listed twice")
        m = cls(id=backup_id, job=_get(d, "job", str), host=_get(d, "host", str),
                vigil_version=_get(d, "vigil_version", str), started_at=_time(d, "started_at"),
                finished_at=_time(d, "finished_at"), artifacts=arts,
                warnings=_get(d, "warnings", list, []), sources=_get(d, "sources", list, []))
        if not all(isinstance(w, str) for w in m.warnings):
            raise ManifestError("warnings: not a list of strings")
        m.kind, m.base, m.chain = _chain(d, backup_id)
        return m


class ManifestError(ValueError):
    """A manifest that does not check out; the message says which key and why.
    Whoever reads manifests from a destination reports it as a damaged backup."""


_MISSING = object()
_KINDS = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "an object"}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{what}: not a JSON object")
    return value


def _get(d: dict[str, Any], key: str, kind: type, default: Any = _MISSING) -> Any:
    value = d.get(key, default)
    if value is _MISSING:
        raise ManifestError(f"{key}: missing")
    # bool is an int to Python, never to a manifest.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ManifestError(f"{key}: {str(value)[:100]!r} is not {_KINDS[kind]}")
    return value


def _opt(d: dict[str, Any], key: str, kind: type) -> Any:
    return None if d.get(key) is None else _get(d, key, kind)


def _time(d: dict[str, Any], key: str) -> str:
    text: str = _get(d, key, str)
    try:
        year = parse_iso(text).year
    except ValueError:
        raise ManifestError(f"{key}: {text!r} is not an ISO 8601 time") from None
    if not 1970 <= year < 9999:  # out there a time zone shift overflows datetime
        raise ManifestError(f"{key}: {text!r} is not a plausible backup time")
    return text


def _chain(d: dict[str, Any], backup_id: str) -> tuple[str, str | None, list[str]]:
    """kind, base and chain, consistent with each other: a chain of older backup ids that
    ends with the base. A manifest from before incremental backups is a full one."""
    kind = _get(d, "kind", str, "full")
    base = _opt(d, "base", str)
    chain = _get(d, "chain", list, [])
    if kind == "full":
        if base is not None or chain:
            raise ManifestError("a full backup has no base or chain")
        return kind, None, []
    if kind != "incremental":
        raise ManifestError(f"kind {kind[:100]!r} is neither full nor incremental")
    if not chain or not all(isinstance(c, str) and is_backup_id(c) for c in chain):
        raise ManifestError("chain: an incremental backup needs a list of backup ids")
    # Ids start with their UTC second: runs within one second keep their order by time only.
    times = [c[:16] for c in [*chain, backup_id]]
    if len(set(chain + [backup_id])) != len(chain) + 1 or times != sorted(times):
        raise ManifestError("chain: ids must be older than the backup, oldest first, each once")
    if base != chain[-1]:
        raise ManifestError(f"base {base!r} is not the last id of the chain")
    return kind, base, chain


def is_plain_name(name: object) -> bool:
    """A file name that stays in its directory: not empty, no '/', not '.' or '..', no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\x00" not in name)


def _size(d: dict[str, Any], key: str, where: str, required: bool = False) -> Any:
    value = _get(d, key, int) if required else _opt(d, key, int)
    if value is not None and value < 0:
        raise ManifestError(f"{where}: {key} {value} is negative")
    return value


def _artifact(a: dict[str, Any]) -> Artifact:
    name = _get(a, "name", str)
    if not is_plain_name(name) or name == MANIFEST:
        raise ManifestError(f"artifact name {name!r} is not a plain file name")
    where = f"artifact {name}"
    sha = _get(a, "sha256", str)
    if not _SHA256.fullmatch(sha):
        raise ManifestError(f"{where}: sha256 {sha!r} is not 64 hex digits")
    tables = _opt(a, "tables", dict)
    if tables is not None and not all(isinstance(n, int) and not isinstance(n, bool) for n in tables.values()):
        raise ManifestError(f"{where}: tables: row counts must be integers")
    known = set(Artifact.__dataclass_fields__)
    return Artifact(
        name=name, source=_get(a, "source", str), type=_get(a, "type", str),
        size=_size(a, "size", where, required=True), sha256=sha,
        compression=_get(a, "compression", str, "zstd"), encrypted=_get(a, "encrypted", bool, False),
        entries=_size(a, "entries", where), bytes=_size(a, "bytes", where), database=_opt(a, "database", str),
        tables=tables, extra={k: v for k, v in a.items() if k not in known},
    )
