"""Fixtures for the production adapters: real local peers on 127.0.0.1, certificates from trustme."""

from __future__ import annotations

import importlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import trustme

from tests.adapters.peers.dropbox_fake import FakeDropbox
from tests.adapters.peers.httpd import HttpPeer

#: Fake credentials: long and distinctive, so a log scan can look for them.
DROPBOX_APP_KEY = "fake-app-key-7f3k2m9q"
DROPBOX_APP_SECRET = "fake-app-secret-Qx81bZr40"
DROPBOX_REFRESH_TOKEN = "fake-refresh-token-Vw93LkP0aa"


@dataclass
class Tls:
    """A private CA (its PEM file for clients) and a server context for 127.0.0.1 signed by it."""

    ca: trustme.CA
    ca_pem: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return Tls(ca, pem)


def reload_dropbox_sdk() -> None:
    """The SDK reads DROPBOX_API_HOST / DROPBOX_API_CONTENT_HOST at import: re-import it to re-read them."""
    import dropbox
    import dropbox.dropbox_client
    import dropbox.session

    importlib.reload(dropbox.session)
    importlib.reload(dropbox.dropbox_client)
    importlib.reload(dropbox)


@dataclass
class DropboxPeer:
    fake: FakeDropbox
    peer: HttpPeer
    root: Path
    ca_pem: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.peer.port}"

    def env(self) -> dict:
        return {"DROPBOX_API_HOST": self.host, "DROPBOX_API_CONTENT_HOST": self.host}


@pytest.fixture
def dropbox_peer(tmp_path: Path, tls: Tls) -> Iterator[DropboxPeer]:
    """The Dropbox stand-in over TLS, with the SDK re-imported to point at it (and restored afterwards)."""
    root = tmp_path / "dropbox"
    root.mkdir()
    fake = FakeDropbox(root, DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN)
    with HttpPeer(fake, tls.server_context()) as peer:
        fake.base_url = peer.url
        state = DropboxPeer(fake, peer, root, tls.ca_pem)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in state.env().items():
                mp.setenv(name, value)
            # requests lets these beat the SDK's ca_certs (this machine sets them): drop them for the test.
            mp.delenv("REQUESTS_CA_BUNDLE", raising=False)
            mp.delenv("CURL_CA_BUNDLE", raising=False)
            reload_dropbox_sdk()
            try:
                yield state
            finally:
                assert not peer.errors, peer.errors
        reload_dropbox_sdk()
        assert "DROPBOX_API_HOST" not in os.environ or os.environ["DROPBOX_API_HOST"] != state.host
