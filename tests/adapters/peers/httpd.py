"""A tiny threaded HTTP(S) server on 127.0.0.1 that hands every request to a Python callable.

Only the standard library: the same peer serves tests in this process and a CLI running in a subprocess.
Faults are injected per path: `peer.inject("/v1/chat/completions", Reply.json({...}, status=429))` makes the
next request to that path get that reply instead of the app's answer.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> Dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(
        cls, obj: Any, status: int = 200, headers: Optional[Dict[str, str]] = None, delay: float = 0.0
    ) -> Reply:
        return cls(
            status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}, delay
        )

    @classmethod
    def text(cls, text: str, status: int = 200, delay: float = 0.0) -> Reply:
        return cls(status, text.encode(), {"Content-Type": "text/plain"}, delay)


App = Callable[[Request], Reply]


class HttpPeer:
    """Serve `app` on 127.0.0.1 (TLS when `ssl_context` is given) in a background thread."""

    def __init__(self, app: App, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.requests: List[Request] = []
        self.errors: List[str] = []  # exceptions raised by the app (a peer bug, reported as a 500)
        self._faults: Dict[str, Deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- control -------------------------------------------------------------------------------------------

    def inject(self, path: str, *replies: Reply) -> None:
        """The next requests to `path` get `replies`, in order, instead of the app's answers."""
        with self._lock:
            self._faults[path].extend(replies)

    def paths(self) -> List[str]:
        with self._lock:
            return [r.path for r in self.requests]

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> HttpPeer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                reply = peer._dispatch(request)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.ssl_context is not None:
            # Handshake lazily in the handler thread, so one slow client never blocks accept().
            server.socket = self.ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HttpPeer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- dispatch ------------------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._faults.get(request.path)
            fault = queue.popleft() if queue else None
        if fault is not None:
            return fault
        try:
            return self.app(request)
        except Exception as exc:  # noqa: BLE001 - a peer bug must show up as a 500 the test can see
            self.errors.append(f"{request.path}: {type(exc).__name__}: {exc}")
            return Reply.text(f"peer error: {type(exc).__name__}: {exc}", status=500)
