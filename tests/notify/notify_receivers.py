"""Local HTTP receivers for notification tests: healthy, failing, slow, or not there at all.

Each records every request it saw (headers, body, arrival time), so tests can count the
attempts a sender made and check exactly what it sent.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Seen:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A receiver answering `status` after `delay` seconds."""

    url: str
    requests: list[Seen] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return len(self.requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Seen]:
        """The first `count` requests, waiting up to `timeout` seconds for them."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.requests) >= count, f"saw {len(self.requests)} requests, not {count}"
        return self.requests[:count]


@contextmanager
def receiver(status: int = 200, delay: float = 0.0, path: str = "/hook") -> Iterator[Receiver]:
    """A receiver on a free 127.0.0.1 port; `path` is part of its URL (a secret token, say)."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            seen.append(Seen(self.path, dict(self.headers.items()), body, time.monotonic()))
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up waiting (its timeout): nothing to answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}{path}", seen)
    finally:
        server.shutdown()
        server.server_close()


def dead_url(path: str = "/hook") -> str:
    """A URL on a 127.0.0.1 port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
