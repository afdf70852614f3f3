"""The login throttle and session revocation on the shared store, SQLite and PostgreSQL (two instances = two
workers)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from publisher_v2.web.auth import AdminSessions, LoginThrottle, WebSettings
from publisher_v2.web.errors import TooManyAttempts
from publisher_v2.web.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_failures_from_any_client_and_any_worker_share_one_budget_that_ages_out(ledger_location: object) -> None:
    clock = Clock()
    store = ledger_location
    worker_a = LoginThrottle(SessionStore(store, clock=clock), max_failures=3, clock=clock)
    worker_b = LoginThrottle(SessionStore(store, clock=clock), max_failures=3, clock=clock)
    worker_a.admit("10.0.0.1")  # three attempts with a wrong password: each is counted when admitted
    worker_b.admit("10.0.0.2")
    worker_a.admit("10.0.0.3")
    for throttle, client in ((worker_a, "10.0.0.9"), (worker_b, "192.0.2.1")):  # new addresses buy nothing
        with pytest.raises(TooManyAttempts) as refused:
            throttle.admit(client)
        assert refused.value.headers == {"Retry-After": "301"}
    clock.now += timedelta(minutes=5, seconds=1)
    worker_b.admit("10.0.0.9")  # the window passed: admitted again, and the old attempts are pruned
    assert SessionStore(store).failures_since("account", clock.now - timedelta(hours=1))[0] == 1


def test_a_right_password_takes_its_attempt_back(ledger_location: object) -> None:
    clock = Clock()
    throttle = LoginThrottle(SessionStore(ledger_location, clock=clock), max_failures=2, clock=clock)
    throttle.admit("10.0.0.1")  # a wrong one
    clock.now += timedelta(seconds=1)
    stamp = throttle.admit("10.0.0.2")
    clock.now += timedelta(seconds=1)
    throttle.succeeded("10.0.0.2", stamp)  # the right one: not a failure
    throttle.admit("10.0.0.3")  # so one more attempt fits in the budget of 2
    with pytest.raises(TooManyAttempts):
        throttle.admit("10.0.0.4")


def test_a_revoked_cookie_is_refused_by_another_instance_while_a_new_one_works(ledger_location: object) -> None:
    settings = WebSettings(admin_password="pw")
    store = ledger_location
    worker_a = AdminSessions(settings, store=SessionStore(store))
    worker_b = AdminSessions(settings, store=SessionStore(store))
    old, other_browser = worker_a.issue(), worker_a.issue()  # issued in the same second
    assert old != other_browser and worker_b.is_admin(old)
    worker_a.revoke(old)
    assert not worker_b.is_admin(old) and not worker_a.is_admin(old)
    assert worker_a.is_admin(other_browser) and worker_b.is_admin(worker_b.issue())  # only that session ends


def test_a_session_is_live_only_in_the_store_that_opened_it(ledger_location: object, tmp_path) -> None:
    settings = WebSettings(admin_password="pw")
    cookie = AdminSessions(settings, store=SessionStore(ledger_location)).issue()
    elsewhere = AdminSessions(settings, store=SessionStore(tmp_path / "other.sqlite"))
    assert not elsewhere.is_admin(cookie)  # signed with the right key, but no such session here
    assert AdminSessions(settings, store=SessionStore(ledger_location)).is_admin(cookie)
