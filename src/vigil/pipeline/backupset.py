"""The backup under construction on every destination: one producer, N writers.

Sources write each artifact once; it is compressed, hashed and (per group)
encrypted once, then fanned out to every destination's writer. A destination
that fails (opening, writing, reading back, committing) is dropped and
remembered; the others go on, so one broken disk does not cost the other copies.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from vigil.destinations.base import BackupWriter, Sink
from vigil.errors import BackupError
from vigil.formats.manifest import Artifact, Manifest
from vigil.pipeline.crypto import SUFFIX
from vigil.pipeline.progress import NO_PROGRESS, Meter
from vigil.pipeline.stream import ArtifactStream, FanOut, Tee


class BackupSet:
    """The backup under construction on every destination (an ArtifactOutput).

    Destinations that fail are dropped and remembered; the run goes on with
    the rest so that one broken disk does not cost the other copies.
    """

    def __init__(self, writers: dict[str, BackupWriter], log: logging.Logger,
                 encrypted: frozenset[str] | set[str] = frozenset(),
                 encryptor: Callable[[Any], Any] | None = None, meter: Meter = NO_PROGRESS) -> None:
        self.writers = writers
        self.log = log
        self.meter = meter
        self.failed: dict[str, str] = {}
        # Destinations that receive age-encrypted artifacts form one group,
        # the others another; each group gets its own artifact list and manifest.
        self.encrypted = encrypted
        self.encryptor = encryptor
        self.artifacts: dict[bool, list[Artifact]] = {False: [], True: []}
        self.source = ""

    def live(self) -> dict[str, BackupWriter]:
        return {n: w for n, w in self.writers.items() if n not in self.failed}

    def fail(self, dest: str, exc: BaseException | str) -> None:
        if dest in self.failed:
            return
        if isinstance(exc, OSError) and exc.strerror:
            reason = f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
        else:
            # A destination's own errors already name it.
            reason = str(exc).removeprefix(f"destination {dest}: ")
        self.failed[dest] = f"destination {dest}: {reason}"
        self.log.error("destination %s failed: %s", dest, reason)

    def _require_live(self) -> dict[str, BackupWriter]:
        live = self.live()
        if not live:
            first = next(iter(self.failed))
            raise BackupError(self.failed[first], f"destination:{first}")
        return live

    def group(self, dest: str) -> bool:
        return dest in self.encrypted

    @contextmanager
    def artifact(self, name: str, type_: str, *, threads: int = -1) -> Iterator[ArtifactStream]:
        sinks: dict[bool, dict[str, Sink]] = {}
        for dest, writer in self._require_live().items():
            enc = self.group(dest)
            try:
                sinks.setdefault(enc, {})[dest] = writer.open(name + (SUFFIX if enc else ""))
            except (BackupError, OSError) as exc:
                self.fail(dest, exc)
        self._require_live()
        fans = {enc: FanOut(group, self.fail) for enc, group in sinks.items()}
        targets: list[Any] = [fans[False]] if False in fans else []
        if True in fans:
            assert self.encryptor is not None
            targets.append(self.encryptor(fans[True]))
        stream = ArtifactStream(targets[0] if len(targets) == 1 else Tee(targets), threads=threads)
        try:
            # An index is written alongside its archive: the archive's bar says enough.
            with self.meter.track(f"{self.source} → {name}", None, lambda: stream.raw_bytes) \
                    if type_ != "index" else nullcontext():
                yield stream
            stream.close()
        except BaseException:
            stream.abort()
            raise
        self._require_live()
        meta = dict(stream.meta)
        common = dict(source=self.source, type=type_, entries=meta.pop("entries", None),
                      bytes=meta.pop("bytes", None), database=meta.pop("database", None),
                      tables=meta.pop("tables", None), extra=meta)
        for enc, fan in fans.items():
            self.artifacts[enc].append(Artifact(name=name + (SUFFIX if enc else ""), size=fan.size,
                                                sha256=fan.sha256, encrypted=enc, **common))

    def verify(self) -> None:
        """Read every stored artifact back and compare size and SHA-256."""
        for dest, writer in self.live().items():
            for art in self.artifacts[self.group(dest)]:
                sha, size = hashlib.sha256(), 0
                try:
                    with self.meter.track(f"read back {dest}:{art.name}", art.size,
                                          lambda: size):  # noqa: B023 - read while this loop runs
                        for chunk in writer.read_back(art.name):
                            sha.update(chunk)
                            size += len(chunk)
                except (OSError, BackupError) as exc:
                    # A copy that cannot be read back is dropped like one that failed
                    # writing: the other destinations still commit.
                    self.fail(dest, exc)
                    break
                if (size, sha.hexdigest()) != (art.size, art.sha256):
                    self.fail(dest, f"read-back of {art.name} does not match what was written "
                                    f"({size} bytes, sha256 {sha.hexdigest()[:12]}… vs {art.size}, {art.sha256[:12]}…)")
                    break
        self._require_live()

    def commit(self, manifests: dict[bool, Manifest], on_commit: Callable[[str, Manifest], None]) -> None:
        """Write each live destination's manifest; `on_commit` hears of each commit
        as it happens (a signal may stop the loop). A failing one is dropped."""
        for dest, writer in self.live().items():
            manifest = manifests[self.group(dest)]
            try:
                writer.commit(manifest.dumps())
            except (BackupError, OSError) as exc:
                self.fail(dest, exc)
                continue
            on_commit(dest, manifest)

    def abort(self) -> None:
        """Drop what every writer made but did not commit; never raises."""
        for writer in self.writers.values():
            writer.abort()
