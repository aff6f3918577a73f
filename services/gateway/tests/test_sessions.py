"""Browser sessions at the REST edge: an API key exchanged for an HttpOnly cookie, writes
with the cookie only with the session's CSRF token, and every way a session ends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from imagetron_gateway.domain.identity import csrf_token_for, hash_session_token
from imagetron_platform.events_tokens import verify_events_token

SESSION = "imagetron_session"


async def sign_in(gateway, name: str = "ada") -> tuple[str, str]:
    """(session token from the cookie, csrf token from the body)."""
    response = await gateway.client.post("/api/v1/session", json={"api_key": gateway.keys[name]})
    assert response.status_code == 201, response.text
    token = response.cookies[SESSION]
    gateway.client.cookies.clear()  # each test sends the cookie it means to
    return token, response.json()["csrf_token"]


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION}={token}"}


async def test_sign_in_sets_an_httponly_strict_cookie_and_keeps_only_its_hash(gateway):
    response = await gateway.client.post("/api/v1/session", json={"api_key": gateway.keys["ada"]})
    assert response.status_code == 201
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION}=")
    for attribute in ("HttpOnly", "Path=/", "SameSite=strict", "Max-Age=604800"):
        assert attribute in set_cookie, set_cookie
    token = response.cookies[SESSION]
    body = response.json()
    assert body["user"]["name"] == "ada"
    assert body["csrf_token"] == csrf_token_for(token) != token
    assert token not in str(body)
    [stored] = gateway.sessions.by_hash.values()
    assert stored.token_hash == hash_session_token(token) != token
    assert stored.user_id == gateway.people["ada"].id


async def test_a_wrong_key_opens_no_session(gateway):
    for body in ({"api_key": "itk_nope"}, {"api_key": ""}, {}, {"api_key": "x", "extra": 1}):
        response = await gateway.client.post("/api/v1/session", json=body)
        assert response.status_code in (401, 422), body
        assert response.headers["content-type"] == "application/problem+json"
        assert "set-cookie" not in response.headers
    assert gateway.sessions.by_hash == {}


async def test_reads_with_the_cookie_act_as_its_user(gateway):
    token, csrf = await sign_in(gateway)
    me = await gateway.client.get("/api/v1/me", headers=cookie(token))
    assert me.status_code == 200
    assert me.json()["id"] == str(gateway.people["ada"].id)
    session = await gateway.client.get("/api/v1/session", headers=cookie(token))
    assert session.status_code == 200
    assert session.json()["csrf_token"] == csrf


async def test_writes_with_the_cookie_need_the_sessions_csrf_token(gateway):
    # A write that reaches no other service: asking for an events token.
    token, csrf = await sign_in(gateway)
    _, other_csrf = await sign_in(gateway, "admin")
    for headers in (
        cookie(token),
        {**cookie(token), "X-CSRF-Token": ""},
        {**cookie(token), "X-CSRF-Token": csrf + "x"},
        {**cookie(token), "X-CSRF-Token": other_csrf},  # another session's token
        {**cookie(token), "X-CSRF-Token": token},  # the session itself is not the token
    ):
        refused = await gateway.client.post("/api/v1/events/token", headers=headers)
        assert refused.status_code == 401, headers
        assert "X-CSRF-Token" in refused.json()["detail"]
        assert "set-cookie" not in refused.headers

    accepted = await gateway.client.post(
        "/api/v1/events/token", headers={**cookie(token), "X-CSRF-Token": csrf}
    )
    assert accepted.status_code == 201
    claims = verify_events_token(
        gateway.settings.events_token_secret.get_secret_value(), accepted.json()["token"]
    )
    assert claims is not None
    assert claims.owner_id == gateway.people["ada"].id


async def test_an_api_key_wins_over_a_cookie(gateway):
    token, _ = await sign_in(gateway, "admin")
    me = await gateway.client.get("/api/v1/me", headers={**cookie(token), **gateway.auth("ada")})
    assert me.json()["name"] == "ada"


async def test_sign_out_ends_the_session_and_clears_the_cookie(gateway):
    token, csrf = await sign_in(gateway)
    without_csrf = await gateway.client.delete("/api/v1/session", headers=cookie(token))
    assert without_csrf.status_code == 401
    assert (await gateway.client.get("/api/v1/me", headers=cookie(token))).status_code == 200

    out = await gateway.client.delete(
        "/api/v1/session", headers={**cookie(token), "X-CSRF-Token": csrf}
    )
    assert out.status_code == 204
    assert f'{SESSION}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert gateway.sessions.by_hash == {}
    for path in ("/api/v1/me", "/api/v1/session"):
        after = await gateway.client.get(path, headers=cookie(token))
        assert after.status_code == 401, path
    # Signing out without a session is not an error: there is nothing left to end.
    assert (await gateway.client.delete("/api/v1/session")).status_code == 204


async def test_a_session_dies_with_its_api_key(gateway):
    token, _ = await sign_in(gateway)
    del gateway.users.by_hash[next(iter(s.key_hash for s in gateway.sessions.by_hash.values()))]
    response = await gateway.client.get("/api/v1/me", headers=cookie(token))
    assert response.status_code == 401
    assert "sign in again" in response.json()["detail"]


async def test_an_expired_session_is_refused(gateway):
    token, _ = await sign_in(gateway)
    [(token_hash, session)] = gateway.sessions.by_hash.items()
    gateway.sessions.by_hash[token_hash] = replace(
        session, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert (await gateway.client.get("/api/v1/me", headers=cookie(token))).status_code == 401


async def test_forged_or_missing_cookies_are_401_problems(gateway):
    for headers in (cookie("forged"), cookie(""), {}):
        response = await gateway.client.get("/api/v1/session", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"


async def test_signing_in_again_and_again_keeps_only_the_newest_sessions(gateway):
    context = gateway.state["context"]
    gateway.state["context"] = replace(
        context, settings=context.settings.model_copy(update={"max_sessions_per_user": 3})
    )
    tokens = [(await sign_in(gateway))[0] for _ in range(5)]
    assert len(gateway.sessions.by_hash) == 3
    assert (await gateway.client.get("/api/v1/me", headers=cookie(tokens[0]))).status_code == 401
    assert (await gateway.client.get("/api/v1/me", headers=cookie(tokens[-1]))).status_code == 200


async def test_guessing_keys_at_sign_in_is_limited_per_address(gateway):
    for _ in range(gateway.settings.rate_limit_per_address):
        response = await gateway.client.post("/api/v1/session", json={"api_key": "itk_guess"})
        assert response.status_code == 401
    refused = await gateway.client.post("/api/v1/session", json={"api_key": gateway.keys["ada"]})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
