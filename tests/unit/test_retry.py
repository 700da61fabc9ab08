"""One retry mechanism: what counts as transient, and the doubling delay."""

from __future__ import annotations

import logging
import smtplib

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from vigil.errors import TransientError
from vigil.retry import is_transient, with_retry


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutObject")


@pytest.mark.parametrize("exc,transient", [
    (client_error("SlowDown", 503), True),
    (client_error("InternalError", 500), True),
    (client_error("AccessDenied", 403), False),
    (client_error("NoSuchBucket", 404), False),
    (client_error("PreconditionFailed", 412), False),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    (ConnectionRefusedError(), True),
    (smtplib.SMTPResponseException(451, b"try later"), True),
    (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False),
    (ValueError("bug"), False),
])
def test_classification(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_retries_transient_with_doubling_delay_then_gives_up() -> None:
    waits: list[float] = []
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise TransientError("connection refused")

    with pytest.raises(TransientError):
        with_retry(flaky, attempts=4, delay=0.5, what="x", log=logging.getLogger("t"), sleep=waits.append)
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0]


def test_permanent_errors_fail_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise client_error("AccessDenied", 403)

    with pytest.raises(ClientError):
        with_retry(broken, attempts=5, delay=0, what="x", log=logging.getLogger("t"), sleep=lambda s: None)
    assert len(calls) == 1
