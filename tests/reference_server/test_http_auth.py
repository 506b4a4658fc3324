"""Login, verify and logout in process, with accounts made by ``seed_accounts``."""

from __future__ import annotations

import asyncio
import csv
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from reference_server import LOGIN_PATH, LOGOUT_PATH, VERIFY_PATH
from reference_server.accounts import seed_accounts
from reference_server.app import STATE

FAST_N = 2**10


def _seed(data_dir: Path, count: int = 3) -> list[tuple[str, str]]:
    out = data_dir / "accounts.csv"
    seed_accounts(data_dir, count, out, seed=1, scrypt_n=FAST_N)
    with out.open(newline="") as f:
        return [(row["username"], row["password"]) for row in csv.DictReader(f)]


async def test_login_json_then_verify_and_logout(client: TestClient, tmp_path: Path) -> None:
    (user, password), *_ = _seed(tmp_path)
    resp = await client.post(LOGIN_PATH, json={"username": user, "password": password})
    assert resp.status == 200
    assert (await resp.json())["username"] == user
    cookie = resp.cookies["session"]
    assert cookie["httponly"] and cookie["path"] == "/" and cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == 60
    resp = await client.get(VERIFY_PATH)  # the client's jar carries the cookie
    assert resp.status == 200
    assert (await resp.json()) == {
        "valid": True,
        "username": user,
        "expires_at": (await resp.json())["expires_at"],
    }
    resp = await client.post(LOGOUT_PATH)
    assert resp.status == 200 and resp.cookies["session"].value == ""
    resp = await client.get(VERIFY_PATH)
    assert resp.status == 401 and (await resp.json())["valid"] is False


async def test_login_form_and_email_alias(client: TestClient, tmp_path: Path) -> None:
    creds = _seed(tmp_path)
    resp = await client.post(LOGIN_PATH, data={"username": creds[0][0], "password": creds[0][1]})
    assert resp.status == 200
    resp = await client.post(LOGIN_PATH, data={"email": creds[1][0], "password": creds[1][1]})
    assert resp.status == 200
    resp = await client.post(LOGIN_PATH, json={"email": creds[2][0], "password": creds[2][1]})
    assert resp.status == 200
    counts = client.server.app[STATE].users.login_counts()
    assert counts == {creds[0][0]: 1, creds[1][0]: 1, creds[2][0]: 1}


async def test_failed_logins(client: TestClient, tmp_path: Path) -> None:
    (user, password), *_ = _seed(tmp_path)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"json": {"username": user, "password": password + "x"}}, 401),
        ({"json": {"username": "ghost", "password": password}}, 401),
        ({"json": {"username": user}}, 400),
        ({"json": {"password": password}}, 400),
        ({"json": ["not", "an", "object"]}, 400),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
    ]
    for kwargs, status in cases:
        resp = await client.post(LOGIN_PATH, **kwargs)
        assert resp.status == status, kwargs
        body = await resp.json()
        assert "error" in body and password not in str(body)
        assert "session" not in resp.cookies
    assert client.server.app[STATE].users.login_counts() == {}
    stats = await (await client.get("/api/stats")).json()
    assert stats["logins_failed"] == len(cases) and stats["logins_ok"] == 0


async def test_forged_and_foreign_cookies_rejected(client: TestClient, tmp_path: Path) -> None:
    (user, password), *_ = _seed(tmp_path)
    resp = await client.post(LOGIN_PATH, json={"username": user, "password": password})
    token = resp.cookies["session"].value
    payload, _, mac = token.partition(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad, reason in [
        (f"{forged_payload}.{mac}", "signature"),
        (f"{payload}.{mac[::-1]}", "signature"),
        ("garbage", "signature"),
    ]:
        async with aiohttp.ClientSession() as fresh:
            resp = await fresh.get(
                client.make_url(VERIFY_PATH), headers={"Cookie": f"session={bad}"}
            )
            assert resp.status == 401
            assert reason in (await resp.json())["error"]
    async with aiohttp.ClientSession() as fresh:
        resp = await fresh.get(client.make_url(VERIFY_PATH))
        assert resp.status == 401 and "no session" in (await resp.json())["error"]
    stats = await (await client.get("/api/stats")).json()
    assert stats["verifies_failed"] == 4


async def test_expired_cookie_rejected(make_client: Any, tmp_path: Path) -> None:
    client = await make_client(session_ttl_s=0.3)
    (user, password), *_ = _seed(tmp_path)
    resp = await client.post(LOGIN_PATH, json={"username": user, "password": password})
    token = resp.cookies["session"].value
    headers = {"Cookie": f"session={token}"}
    async with aiohttp.ClientSession() as fresh:
        assert (await fresh.get(client.make_url(VERIFY_PATH), headers=headers)).status == 200
        await asyncio.sleep(0.4)
        resp = await fresh.get(client.make_url(VERIFY_PATH), headers=headers)
        assert resp.status == 401 and "expired" in (await resp.json())["error"]


async def test_concurrent_logins_keep_loop_responsive(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing runs off the loop: /health answers while logins are being hashed. Each login's
    password check is held (off the loop, or it would hold the loop too) until /health has
    answered, so the property is asserted without a wall-clock bound (was: health < 0.2 s,
    which a loaded machine's scheduling alone can break)."""
    from reference_server.accounts import UserStore

    store = UserStore(tmp_path / "users.sqlite")
    store.set_password("slow", "pw", scrypt_n=FAST_N)  # the hold, not the cost, keeps it busy
    store.close()
    loop_thread = threading.get_ident()
    entered: list[int] = []  # the thread of each password check
    health_done = threading.Event()
    held: list[bool] = []  # per check: /health had answered while it was being held
    real = UserStore.authenticate

    def authenticate(self: UserStore, username: str, password: Any) -> bool:
        entered.append(threading.get_ident())
        held.append(health_done.wait(10))  # on the loop it would block /health: False
        return real(self, username, password)

    monkeypatch.setattr(UserStore, "authenticate", authenticate)
    logins = [
        asyncio.ensure_future(client.post(LOGIN_PATH, json={"username": "slow", "password": "pw"}))
        for _ in range(8)
    ]
    while not entered:  # a login is being checked (bounded by the test's timeout)
        await asyncio.sleep(0.01)
    health = await client.get("/health")
    health_done.set()
    results = await asyncio.gather(*logins)
    assert health.status == 200 and all(r.status == 200 for r in results)
    assert client.server.app[STATE].users.login_counts() == {"slow": 8}
    assert len(entered) == 8 and loop_thread not in entered
    assert held == [True] * 8


async def test_logout_revokes_the_token_server_side(make_client: Any, tmp_path: Path) -> None:
    """A copy of the cookie (stolen, or kept by a client that ignores the cleared cookie) stops
    working at logout, also after a restart on the same data dir."""
    client = await make_client()
    (user, password), (other, other_pw), *_ = _seed(tmp_path)
    resp = await client.post(LOGIN_PATH, json={"username": user, "password": password})
    kept = {"Cookie": f"session={resp.cookies['session'].value}"}
    async with aiohttp.ClientSession() as second:
        resp = await second.post(
            client.make_url(LOGIN_PATH), json={"username": other, "password": other_pw}
        )
        other_cookie = {"Cookie": f"session={resp.cookies['session'].value}"}
    async with aiohttp.ClientSession() as copy:
        assert (await copy.get(client.make_url(VERIFY_PATH), headers=kept)).status == 200
        assert (await client.post(LOGOUT_PATH)).status == 200
        resp = await copy.get(client.make_url(VERIFY_PATH), headers=kept)
        assert resp.status == 401 and "revoked" in (await resp.json())["error"]
        assert (await copy.get(client.make_url(VERIFY_PATH), headers=other_cookie)).status == 200
    await client.close()
    restarted = await make_client()
    async with aiohttp.ClientSession() as copy:
        assert (await copy.get(restarted.make_url(VERIFY_PATH), headers=kept)).status == 401
        resp = await copy.get(restarted.make_url(VERIFY_PATH), headers=other_cookie)
        assert resp.status == 200


async def test_deleted_user_token_rejected_over_http(client: TestClient, tmp_path: Path) -> None:
    (user, password), *_ = _seed(tmp_path)
    resp = await client.post(LOGIN_PATH, json={"username": user, "password": password})
    assert resp.status == 200
    assert (await client.get(VERIFY_PATH)).status == 200
    assert client.server.app[STATE].users.delete_user(user)
    assert (await client.get(VERIFY_PATH)).status == 401
