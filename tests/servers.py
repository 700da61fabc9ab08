"""Real servers on 127.0.0.1 for tests: SMTP (aiosmtpd, STARTTLS, AUTH) and HTTP."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-smtp-pässword"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpServer:
    port: int
    ca_file: Path
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    controller: Any = None
    implicit_tls: bool = False  # TLS from the first byte (SMTPS, port 465) instead of STARTTLS

    def start(self, cert_pem: Path, key_pem: Path) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                server.envelopes.append(envelope)
                server.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() \
                and auth_data.password == SMTP_PASSWORD.encode()
            return AuthResult(success=ok)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_pem, key_pem)
        # aiosmtpd's auth_require_tls only recognises STARTTLS; with implicit TLS the
        # whole connection is encrypted anyway.
        tls = {"ssl_context": ctx, "auth_require_tls": False} if self.implicit_tls else \
            {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     **tls)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def wait_for(self, n: int, timeout: float = 20) -> list[email.message.EmailMessage]:
        deadline = time.time() + timeout
        while len(self.messages) < n and time.time() < deadline:
            time.sleep(0.05)
        return self.messages


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _Served:
    """An HTTP server on 127.0.0.1 (a free port unless `port` says one), in a thread."""

    port: int
    server: Any

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class HttpRecorder(_Served):
    """Records every request; answers with `status` (changeable at run time)."""

    port: int = 0
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: Any = None

    def start(self) -> None:
        rec = self

        class Handler(_Quiet):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec.requests.append({"method": self.command, "path": self.path, "body": body,
                                     "headers": dict(self.headers)})
                self.send_response(rec.status)
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _handle

        self._serve(Handler)


@dataclass
class FlakyFront(_Served):
    """An HTTP proxy in front of an S3 server that answers `failures` uploads (PUT)
    with 503 SlowDown before it forwards any, as a busy object store does."""

    upstream: str
    failures: int = 0
    # Downloads (GET) of keys holding this text are refused with 403 AccessDenied,
    # as a store whose policy allows writing but not reading.
    deny_get: str | None = None
    port: int = 0
    refused: list[str] = field(default_factory=list)
    server: Any = None

    def start(self) -> None:
        import http.client
        from urllib.parse import urlparse

        front = self
        up = urlparse(self.upstream)

        class Handler(_Quiet):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "GET" and front.deny_get and front.deny_get in self.path:
                    front.refused.append(self.path)
                    denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(denied)))
                    self.end_headers()
                    self.wfile.write(denied)
                    return
                if self.command == "PUT" and front.failures > 0:
                    front.failures -= 1
                    front.refused.append(self.path)
                    error = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # no body, but the object's Content-Length
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "server", "date") \
                            and (head or key.lower() != "content-length"):
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._serve(Handler)
