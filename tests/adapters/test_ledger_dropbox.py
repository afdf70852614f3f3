"""The ledger's claims hold on Dropbox too: concurrent `publisher` processes against real local peers
(Dropbox over TLS, OpenAI, Telegram, Instagram Graph, SMTP) post every image once, and each platform's outcome
is recorded with the id the platform returned."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tests.adapters.peers.smtp_fake import SMTP_USER
from tests.adapters.test_end_to_end_cli import PUBLISHER, RECIPIENT, Stack, stack  # noqa: F401 - the fixture
from tests.pg_server import ledger_query

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_concurrent_runs_on_a_dropbox_library_post_each_image_once(
    stack: Stack, store: str, request: pytest.FixtureRequest  # noqa: F811
) -> None:
    location: object = stack.ini.parent / "state" / "ledger.sqlite"
    env = dict(stack.env)
    if store == "postgresql":  # DATABASE_URL moves the ledger of every run to one PostgreSQL database
        server = request.getfixturevalue("pg_server")
        location = env["DATABASE_URL"] = server.url(server.new_database())
    runs = [
        subprocess.Popen(
            [str(PUBLISHER), "--config", str(stack.ini)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(run.wait(120), run.communicate()[0]) for run in runs]
    assert sorted(code for code, _ in outcomes) == [0, 0, 0, 1]  # three images, four runs
    published = sorted(line.split()[1] for code, line in outcomes if code == 0)
    assert published == ["photo0.jpg", "photo1.jpg", "photo2.jpg"]

    assert len(stack.telegram.sent) == 3 and len(stack.graph.published) == 3
    mails = Counter(tuple(r.rcpt_tos) for r in stack.smtp.received)
    assert mails == {(RECIPIENT,): 3, (SMTP_USER,): 3}  # each post, and its confirmation to the sender
    assert sorted(p.name for p in (stack.inbox / "archive").glob("*.jpg")) == published

    rows = ledger_query(
        location,
        "SELECT i.image_name, p.platform, p.state, p.post_id FROM posted_images i"
        " JOIN platform_posts p ON p.content_hash = i.content_hash AND p.attempt = i.attempt"
        " WHERE i.status = 'posted' AND i.archive_state = 'done'",
    )
    assert len(rows) == 9 and {state for _, _, state, _ in rows} == {"posted"}
    assert all(post_id for *_, post_id in rows)
    assert Counter(platform for _, platform, _, _ in rows) == {"telegram": 3, "instagram": 3, "email": 3}
