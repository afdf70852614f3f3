"""A small stateful stand-in of the Dropbox API v2 over a temp folder (serve it over TLS: the SDK insists).

Routes: `/oauth2/token` (refresh-token grant), `/2/files/list_folder` and `/continue` (paged), `get_metadata`,
`download` and `upload` (content-host style: argument in `Dropbox-API-Arg`), `move_v2` (autorename),
`get_temporary_link` (served back under `/tmp/`). Errors use Dropbox's shapes (409 with `error` and
`error_summary`) so the SDK raises the same ApiError it would in production.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional

from tests.adapters.peers.httpd import Reply, Request

BLOCK = 4 * 1024 * 1024


def content_hash(data: bytes) -> str:
    """Dropbox's content hash, computed independently of the code under test."""
    blocks = b"".join(hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
    return hashlib.sha256(blocks).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(tag: str, inner: Optional[str] = None, status: int = 409) -> Reply:
    error: Dict[str, Any] = {".tag": tag}
    if inner is not None:
        error[tag] = {".tag": inner}
    summary = f"{tag}/{inner + '/' if inner else ''}"
    return Reply.json({"error_summary": summary, "error": error}, status=status)


class FakeDropbox:
    """The app behind the peer: Dropbox paths map onto files under `root`."""

    def __init__(
        self,
        root: Path,
        app_key: str,
        app_secret: str,
        refresh_token: str,
        page_size: int = 3,
    ) -> None:
        self.root = root
        self.app_key = app_key
        self.app_secret = app_secret
        self.refresh_token = refresh_token
        self.page_size = page_size
        self.base_url = ""  # set once the peer listens (temporary links point back at it)
        self.tokens: List[str] = []
        self.list_pages_served = 0
        self._cursors: Dict[str, List[Dict[str, Any]]] = {}
        self._links: Dict[str, Path] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    # -- helpers -------------------------------------------------------------------------------------------

    def local(self, path: str) -> Path:
        clean = PurePosixPath("/" + path.strip("/"))
        assert ".." not in clean.parts, path
        return self.root.joinpath(*clean.parts[1:])

    def _display(self, local: Path) -> str:
        return "/" + local.relative_to(self.root).as_posix()

    def metadata(self, local: Path) -> Dict[str, Any]:
        display = self._display(local)
        if local.is_dir():
            return {
                ".tag": "folder",
                "name": local.name,
                "id": "id:" + _short(display),
                "path_lower": display.lower(),
                "path_display": display,
            }
        data = local.read_bytes()
        st = local.stat()
        return {
            ".tag": "file",
            "name": local.name,
            "id": "id:" + _short(display),
            "path_lower": display.lower(),
            "path_display": display,
            "client_modified": _iso(st.st_mtime),
            "server_modified": _iso(st.st_mtime),
            "rev": "0" + hashlib.sha1(data + str(st.st_mtime_ns).encode()).hexdigest()[:15],
            "size": len(data),
            "content_hash": content_hash(data),
            "is_downloadable": True,
        }

    # -- the app -------------------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Reply:
        if request.path == "/oauth2/token":
            return self._token(request)
        if request.method == "GET" and request.path.startswith("/tmp/"):
            local = self._links.get(request.path[len("/tmp/") :])
            if local is None or not local.is_file():
                return Reply.text("gone", status=404)
            return Reply(200, local.read_bytes(), {"Content-Type": "application/octet-stream"})
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in self.tokens:
            return Reply.json(
                {"error_summary": "invalid_access_token/", "error": {".tag": "invalid_access_token"}},
                status=401,
            )
        route = request.path[len("/2/files/") :] if request.path.startswith("/2/files/") else None
        handler = getattr(self, "_" + (route or "").replace("/", "_"), None)
        if handler is None:
            return Reply.text(f"unknown route {request.path}", status=400)
        with self._lock:
            return handler(request)

    def _token(self, request: Request) -> Reply:
        form = request.form()
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
            or form.get("client_id") != self.app_key
            or form.get("client_secret") != self.app_secret
        ):
            return Reply.json(
                {"error": "invalid_grant", "error_description": "refresh token is invalid"}, status=400
            )
        token = "sl.fake-access-" + secrets.token_hex(12)
        self.tokens.append(token)
        return Reply.json({"access_token": token, "token_type": "bearer", "expires_in": 14400})

    def _page(self, entries: List[Dict[str, Any]], limit: Optional[int]) -> Reply:
        size = min(self.page_size, limit) if limit else self.page_size
        page, rest = entries[:size], entries[size:]
        cursor = f"cursor-{next(self._counter)}"
        self._cursors[cursor] = rest
        self.list_pages_served += 1
        return Reply.json({"entries": page, "cursor": cursor, "has_more": bool(rest)})

    def _list_folder(self, request: Request) -> Reply:
        arg = request.json()
        local = self.local(arg["path"])
        if not local.exists():
            return _error("path", "not_found")
        if not local.is_dir():
            return _error("path", "not_folder")
        entries = [self.metadata(p) for p in sorted(local.iterdir())]
        return self._page(entries, arg.get("limit"))

    def _list_folder_continue(self, request: Request) -> Reply:
        rest = self._cursors.pop(request.json()["cursor"], None)
        if rest is None:
            return _error("reset")
        return self._page(rest, None)

    def _get_metadata(self, request: Request) -> Reply:
        local = self.local(request.json()["path"])
        if not local.exists():
            return _error("path", "not_found")
        return Reply.json(self.metadata(local))

    def _download(self, request: Request) -> Reply:
        local = self.local(json.loads(request.headers["dropbox-api-arg"])["path"])
        if not local.is_file():
            return _error("path", "not_found")
        md = self.metadata(local)
        return Reply(
            200,
            local.read_bytes(),
            {"Content-Type": "application/octet-stream", "Dropbox-API-Result": json.dumps(md)},
        )

    def _upload(self, request: Request) -> Reply:
        arg = json.loads(request.headers["dropbox-api-arg"])
        mode = arg.get("mode", "add")
        mode = mode.get(".tag") if isinstance(mode, dict) else mode
        local = self.local(arg["path"])
        if local.exists() and mode != "overwrite":
            return _error("path", "conflict")
        if arg.get("content_hash") and arg["content_hash"] != content_hash(request.body):
            return _error("content_hash_mismatch")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(request.body)
        return Reply.json(self.metadata(local))

    def _move_v2(self, request: Request) -> Reply:
        arg = request.json()
        source, target = self.local(arg["from_path"]), self.local(arg["to_path"])
        if not source.exists():
            return _error("from_lookup", "not_found")
        if target.exists():
            if not arg.get("autorename"):
                return Reply.json(
                    {
                        "error_summary": "to/conflict/file/",
                        "error": {".tag": "to", "to": {".tag": "conflict", "conflict": {".tag": "file"}}},
                    },
                    status=409,
                )
            for n in itertools.count(1):
                candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
                if not candidate.exists():
                    target = candidate
                    break
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        return Reply.json({"metadata": self.metadata(target)})

    def _get_temporary_link(self, request: Request) -> Reply:
        local = self.local(request.json()["path"])
        if not local.is_file():
            return _error("path", "not_found")
        key = secrets.token_urlsafe(16)
        self._links[key] = local
        return Reply.json({"metadata": self.metadata(local), "link": f"{self.base_url}/tmp/{key}"})


def _short(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:22]
