"""Logging to stderr as text or JSON lines; run logs are added per run."""

from __future__ import annotations

import json
import logging
import sys
import time


def printable(text: str) -> str:
    """`text` with the bytes of a file name that are not UTF-8 shown escaped.

    Names are data: os.scandir hands undecodable bytes over as lone surrogates,
    which no UTF-8 writer (run log, journal, manifest, mail) accepts. `caf\\xe9`
    becomes the four characters `\\xe9`, so that the name can still be found.
    """
    if text.isascii():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name can produce
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes: a progress display
    redirects it while its bars are up, so log lines land above them."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(fmt: str, level: int) -> None:
    logger = logging.getLogger("vigil")
    logger.setLevel(logging.DEBUG)  # handlers filter; the run log wants everything
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = _Stderr()
    handler.setLevel(level)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter("vigil: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
