"""A real headless browser for the pages vigil writes: Debian's chromium, a trap for any request, a PNG reader.

scripts/install-system-deps.sh installs chromium: its absence is a broken
setup, not a pass. The browser runs with every request sent to a proxy on
127.0.0.1 that records what was asked and answers nothing, so a page that
reaches out is seen doing so. Chromium's own background services (its update
and time checks, sign-in) ask too, whatever the page: they are told apart by
their exact host names, which no page of vigil names.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import zlib
from html.parser import HTMLParser
from pathlib import Path

# Exact hosts of Chromium's own start-up requests (component updater, network time, sign-in).
CHROMIUM_OWN = {"update.googleapis.com", "accounts.google.com", "clients2.google.com", "clients1.google.com",
                "clientservices.googleapis.com", "content-autofill.googleapis.com",
                "optimizationguide-pa.googleapis.com", "safebrowsingohttpgateway.googleapis.com",
                "edgedl.me.gvt1.com", "redirector.gvt1.com", "www.google.com", "android.clients.google.com"}


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is missing: run scripts/install-system-deps.sh"
    return path


class RequestTrap:
    """A proxy that records the first line of every request made through it, and answers none."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.requests.append(conn.recv(1024).split(b"\r\n", 1)[0].decode(errors="replace"))
            except OSError:
                self.requests.append("(a connection that sent nothing)")
            finally:
                conn.close()

    @staticmethod
    def host(line: str) -> str:
        """The host a request line asks for: `CONNECT h:443 ...` or `GET http://h/... ...`."""
        target = line.split(" ")[1] if " " in line else line
        target = target.split("://", 1)[-1]
        return target.split("/", 1)[0].rsplit(":", 1)[0]

    def from_page(self) -> list[str]:
        return [r for r in self.requests if self.host(r) not in CHROMIUM_OWN]

    def close(self) -> None:
        self.sock.close()


def run_chromium(url: str, trap: RequestTrap, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
           f"--proxy-server=http://127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
           "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
           "--disable-default-apps", "--no-pings", "--disable-breakpad", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console (errors, CSP violations), as chromium logs it."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def screenshot(page: Path, out: Path, width: int, height: int, trap: RequestTrap, profile: Path) -> str:
    proc = run_chromium(page.as_uri(), trap, profile, f"--screenshot={out}", f"--window-size={width},{height}")
    assert out.exists(), proc.stderr[-2000:]
    return proc.stderr


def dump_dom(page: Path, trap: RequestTrap, profile: Path) -> tuple[str, str]:
    proc = run_chromium(page.as_uri(), trap, profile, "--dump-dom", "--window-size=1280,2000")
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA/RGB pixel bytes) of an 8-bit non-interlaced PNG, as chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), f"PNG depth {depth} colour type {color}"
            channels = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def colours(path: Path, step: int = 3) -> int:
    """Distinct colours in a PNG, sampling every `step`-th pixel of every `step`-th row."""
    width, _, rows = png_pixels(path)
    channels = len(rows[0]) // width
    seen = set()
    for row in rows[::step]:
        for x in range(0, width, step):
            seen.add(row[x * channels:x * channels + 3])
    return len(seen)


class Dom(HTMLParser):
    """The elements of a dumped DOM: (tag, attributes) in document order, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._in: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]

    def sections(self) -> list[tuple[dict[str, str], list[tuple[str, dict[str, str]]]]]:
        """Each <section class="job"> with the elements inside it (sections never nest)."""
        out: list[tuple[dict[str, str], list[tuple[str, dict[str, str]]]]] = []
        for tag, attrs in self.elements:
            if tag == "section" and "job" in attrs.get("class", "").split():
                out.append((attrs, []))
            elif out:
                out[-1][1].append((tag, attrs))
        return out
