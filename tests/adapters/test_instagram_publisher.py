"""InstagramPublisher over httpx against a local stand-in of the Graph API: container → poll → publish."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Tuple

import pytest

from publisher_v2.config.schema import InstagramConfig
from publisher_v2.services.publishers.instagram import InstagramPublisher
from tests.adapters.peers.graph_fake import ACCESS_TOKEN, USER_ID, VERSION, FakeGraph, graph_error
from tests.adapters.peers.httpd import HttpPeer, Reply

MEDIA = f"{VERSION}/{USER_ID}/media"
PUBLISH = f"{VERSION}/{USER_ID}/media_publish"
CONTEXT = {"image_name": "a.jpg", "temp_url": "https://dl.example/a.jpg?sig=1", "public_url": True}


@pytest.fixture
def graph() -> Iterator[Tuple[FakeGraph, HttpPeer]]:
    fake = FakeGraph()
    with HttpPeer(fake) as peer:
        yield fake, peer
        assert not peer.errors, peer.errors


def make(
    peer: HttpPeer, token: str = ACCESS_TOKEN, timeout: float = 2.0, **cfg: object
) -> InstagramPublisher:
    values = dict(
        user_id=USER_ID,
        graph_base_url=peer.url + VERSION,
        poll_interval_seconds=0.01,
        poll_timeout_seconds=2.0,
        max_retries=2,
        retry_backoff_seconds=0.01,
    )
    values.update(cfg)
    return InstagramPublisher(InstagramConfig(**values), token, timeout_seconds=timeout)  # type: ignore[arg-type]


@pytest.fixture
def photo(tmp_path: Path) -> str:
    path = tmp_path / "instagram_a.jpg"
    path.write_bytes(b"\xff\xd8\xff not read: Meta fetches the URL")
    return str(path)


async def test_container_is_polled_until_finished_then_published(graph: tuple, photo: str) -> None:
    fake, peer = graph
    fake.statuses = ["IN_PROGRESS", "IN_PROGRESS", "FINISHED"]
    result = await make(peer).publish(photo, "Sunset #sea", CONTEXT)
    assert result.success and result.platform == "instagram" and result.error is None
    assert result.post_id == "1790000000000001"
    ((container_id, container),) = fake.containers.items()
    assert (container.image_url, container.caption) == (CONTEXT["temp_url"], "Sunset #sea")
    assert container.polls == 3 and fake.published == [container_id]
    poll = next(r for r in peer.requests if r.method == "GET")
    assert "status_code" in poll.query["fields"][0]
    assert all(ACCESS_TOKEN not in r.path and ACCESS_TOKEN not in str(r.query) for r in peer.requests)


async def test_without_a_public_url_nothing_is_sent_and_the_result_says_why(graph: tuple, photo: str) -> None:
    _, peer = graph
    result = await make(peer).publish(photo, "c", {"temp_url": "file:///lib/a.jpg", "public_url": False})
    assert not result.success and "public image URL" in (result.error or "")
    assert peer.requests == []


async def test_an_error_status_fails_without_publishing(graph: tuple, photo: str) -> None:
    fake, peer = graph
    fake.statuses = ["IN_PROGRESS", "ERROR"]
    result = await make(peer).publish(photo, "c", CONTEXT)
    assert not result.success and "failed: ERROR" in (result.error or "")
    assert fake.published == [] and PUBLISH not in peer.paths()


async def test_polling_is_bounded_by_the_poll_timeout(graph: tuple, photo: str) -> None:
    fake, peer = graph
    fake.statuses = ["IN_PROGRESS"]
    result = await make(peer, poll_timeout_seconds=0.2, poll_interval_seconds=0.05).publish(
        photo, "c", CONTEXT
    )
    assert not result.success and "not ready after" in (result.error or "")
    assert fake.published == []


async def test_429_and_5xx_then_success_are_retried(graph: tuple, photo: str) -> None:
    fake, peer = graph
    peer.inject(MEDIA, Reply.json({"error": {"message": "slow down", "code": 4}}, status=429))
    peer.inject(PUBLISH, Reply.text("upstream", status=503))
    result = await make(peer).publish(photo, "c", CONTEXT)
    assert result.success
    assert peer.paths().count(MEDIA) == 2 and peer.paths().count(PUBLISH) == 2
    assert len(fake.containers) == 1 and len(fake.published) == 1


async def test_a_rate_limit_code_in_a_400_is_retried(graph: tuple, photo: str) -> None:
    fake, peer = graph
    peer.inject(MEDIA, graph_error("Application request limit reached", 4))
    assert (await make(peer).publish(photo, "c", CONTEXT)).success


async def test_persistent_5xx_is_a_failed_result_after_bounded_retries(graph: tuple, photo: str) -> None:
    _, peer = graph
    peer.inject(MEDIA, *[Reply.text("down", status=500)] * 5)
    result = await make(peer, max_retries=1).publish(photo, "c", CONTEXT)
    assert not result.success and "HTTP 500" in (result.error or "")
    assert peer.paths().count(MEDIA) == 2


async def test_an_invalid_token_is_not_retried_and_not_shown(graph: tuple, photo: str) -> None:
    _, peer = graph
    wrong = "IGQVJwrongToken_do_not_print_me_12345"
    result = await make(peer, token=wrong).publish(photo, "c", CONTEXT)
    assert not result.success and "Invalid OAuth access token" in (result.error or "")
    assert wrong not in (result.error or "")
    assert len(peer.requests) == 1


async def test_malformed_json_is_a_failed_result(graph: tuple, photo: str) -> None:
    _, peer = graph
    peer.inject(MEDIA, Reply.text("<html>not json</html>"))
    result = await make(peer).publish(photo, "c", CONTEXT)
    assert not result.success and "not JSON" in (result.error or "")


async def test_a_container_response_without_an_id_is_a_failed_result(graph: tuple, photo: str) -> None:
    _, peer = graph
    peer.inject(MEDIA, Reply.json({"unexpected": True}))
    result = await make(peer).publish(photo, "c", CONTEXT)
    assert not result.success and "no id" in (result.error or "")


async def test_a_slow_response_times_out_into_a_failed_result(graph: tuple, photo: str) -> None:
    _, peer = graph
    peer.inject(MEDIA, Reply.json({"id": "1"}, delay=1.5))
    result = await make(peer, timeout=0.3).publish(photo, "c", CONTEXT)
    assert not result.success and "timed out" in (result.error or "")
    assert peer.paths().count(MEDIA) == 1


async def test_an_unreachable_graph_api_is_a_failed_result(photo: str) -> None:
    cfg = InstagramConfig(
        user_id=USER_ID, graph_base_url="http://127.0.0.1:9/v21.0", max_retries=1, retry_backoff_seconds=0.01
    )
    result = await InstagramPublisher(cfg, ACCESS_TOKEN, timeout_seconds=1.0).publish(photo, "c", CONTEXT)
    assert not result.success and "ConnectError" in (result.error or "")
