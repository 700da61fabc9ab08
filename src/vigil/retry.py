"""One retry mechanism for sources, destinations and notification channels.

Only errors classified as transient (connection refused, timeouts, 5xx from
object storage, SMTP 4xx) are retried, with a doubling delay; everything else
fails at once. Every retry is logged with its reason.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from vigil.errors import TransientError

T = TypeVar("T")


S3_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
                "ThrottlingException", "RequestTimeTooSkewed"}
BOTO_TRANSIENT = {"EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
                  "ConnectionError", "ProxyConnectionError", "IncompleteReadError", "ResponseStreamingError"}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or response["Error"].get("Code") in S3_TRANSIENT
    if any(c.__name__ in BOTO_TRANSIENT for c in type(exc).__mro__):
        return True
    # smtplib and urllib are looked up, not imported: an exception of theirs
    # can only exist once they are loaded, and importing them costs start-up.
    urllib_error, smtplib = sys.modules.get("urllib.error"), sys.modules.get("smtplib")
    if urllib_error and isinstance(exc, urllib_error.HTTPError):
        return bool(exc.code >= 500 or exc.code == 429)
    if urllib_error and isinstance(exc, urllib_error.URLError):
        return is_transient(exc.reason) if isinstance(exc.reason, BaseException) else True
    if smtplib:
        if isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
            return True
        if isinstance(exc, smtplib.SMTPResponseException):
            return bool(400 <= exc.smtp_code < 500)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, (ConnectionError, TimeoutError, socket.timeout, socket.gaierror))


def with_retry(fn: Callable[[], T], *, attempts: int, delay: timedelta | float, what: str,
               log: logging.Logger, sleep: Callable[[float], None] = time.sleep,
               deadline: float | None = None) -> T:
    """Call fn; on a transient error wait delay, 2*delay, ... up to `attempts` calls in all."""
    wait = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            out_of_time = deadline is not None and time.monotonic() + wait > deadline
            if attempt == attempts or not is_transient(exc) or out_of_time:
                raise
            log.warning("%s failed (%s: %s); retry %d of %d in %.0fs", what, exc.__class__.__name__, exc,
                        attempt, attempts - 1, wait)
            sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")
