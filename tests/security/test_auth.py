"""Logging in and API tokens: brute-force lockout on every login door (the login page, the admin's,
POST /api/auth/token/), hashed expiring revocable tokens that die with a password change, and one
client address per real client behind the reverse proxy. Real requests, real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

LIMIT = 5  # TUNER_LOGIN_FAILURE_LIMIT's default
LOCKED = "Too many failed login attempts"
TOKEN_URL = "/api/auth/token/"
TOKENS_URL = "/api/auth/tokens/"
PROXY = "172.18.0.2"  # the reverse proxy's address, as Daphne sees it


def fresh_address() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def token_post(client, username: str, password: str, **extra):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json", **extra)


def obtain(username: str = "alice", password: str = "alice-password-1") -> str:
    response = token_post(APIClient(), username, password, REMOTE_ADDR=fresh_address())
    assert response.status_code == 200, response.content
    return response.json()["token"]


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def works(token: str) -> bool:
    status = with_token(token).get("/api/experiments/").status_code
    assert status in (200, 401), status
    return status == 200


def auth_token_model():
    from knox.models import get_token_model

    return get_token_model()


# --------------------------------------------------------------------------- lockout


def test_lockout_settings_come_from_the_environment():
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    # One attacker cannot lock everybody out: the count is per username *and* address.
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_RESET_ON_SUCCESS is True


@pytest.mark.parametrize("path, username, password, landing", [
    ("/login/", "alice", "alice-password-1", "/"),
    ("/admin/login/", "staff", "staff-password-1", "/admin/"),
])
def test_a_login_page_locks_out_after_n_wrong_passwords(user, staff_user, path, username, password, landing):
    address = fresh_address()
    client = Client(REMOTE_ADDR=address)
    for _ in range(LIMIT - 1):
        response = client.post(path, {"username": username, "password": "wrong", "next": landing})
        assert response.status_code == 200  # the form again, with its error
        assert LOCKED not in response.content.decode()
    client.post(path, {"username": username, "password": "wrong", "next": landing})

    # The next attempt, even with the right password, is refused with a clear message.
    response = client.post(path, {"username": username, "password": password, "next": landing})
    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED in page and "15 minutes" in page
    assert int(response["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in client.session

    # Per username + address: the same user elsewhere, and another user here, still get in.
    elsewhere = Client(REMOTE_ADDR=fresh_address())
    assert elsewhere.post(path, {"username": username, "password": password, "next": landing})["Location"] == landing
    other = "staff" if username == "alice" else "alice"
    other_password = "staff-password-1" if other == "staff" else "alice-password-1"
    response = client.post("/login/", {"username": other, "password": other_password, "next": "/"})
    assert response.status_code == 302


def test_the_login_page_says_so_in_its_own_layout(user):
    client = Client(REMOTE_ADDR=fresh_address())
    for _ in range(LIMIT):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    page = client.post("/login/", {"username": "alice", "password": "alice-password-1"}).content.decode()
    assert 'class="form-error" role="alert"' in page and LOCKED in page
    assert 'id="id_username"' in page and "Wrong username or password" not in page


def test_the_token_endpoint_locks_out_with_json(user, other_user):
    address = fresh_address()
    client = APIClient()
    for _ in range(LIMIT - 1):
        response = token_post(client, "alice", "wrong", REMOTE_ADDR=address)
        assert response.status_code == 400
        assert "Unable to log in" in response.json()["non_field_errors"][0]
    token_post(client, "alice", "wrong", REMOTE_ADDR=address)

    response = token_post(client, "alice", "alice-password-1", REMOTE_ADDR=address)
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/json")
    assert LOCKED in response.json()["detail"]
    assert int(response["Retry-After"]) == 15 * 60
    assert not auth_token_model().objects.exists()

    assert token_post(client, "alice", "alice-password-1", REMOTE_ADDR=fresh_address()).status_code == 200
    assert token_post(client, "bob", "bob-password-1", REMOTE_ADDR=address).status_code == 200


def test_forty_wrong_passwords_never_get_through(user):
    """The issue's report: 40 wrong passwords in a row on every door, then the right one."""
    address = fresh_address()
    browser, script = Client(REMOTE_ADDR=address), APIClient()
    statuses = set()
    for attempt in range(40):
        statuses.add(browser.post("/login/", {"username": "alice", "password": f"guess-{attempt}"}).status_code)
    assert statuses == {200, 429}
    assert browser.post("/login/", {"username": "alice", "password": "alice-password-1"}).status_code == 429
    for attempt in range(15):  # the token endpoint shares the count (same user, same address)
        response = token_post(script, "alice", f"guess-{attempt}", REMOTE_ADDR=address)
        assert response.status_code == 429 and "detail" in response.json()


def test_the_lockout_ends_after_the_cool_off(user):
    from axes.models import AccessAttempt

    address = fresh_address()
    client = APIClient()
    for _ in range(LIMIT):
        token_post(client, "alice", "wrong", REMOTE_ADDR=address)
    assert token_post(client, "alice", "alice-password-1", REMOTE_ADDR=address).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert token_post(client, "alice", "alice-password-1", REMOTE_ADDR=address).status_code == 200


def test_a_successful_login_resets_the_count(user):
    address = fresh_address()
    client = Client(REMOTE_ADDR=address)
    for _ in range(2):
        for _ in range(LIMIT - 1):
            assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200
        assert client.post("/login/", {"username": "alice", "password": "alice-password-1"}).status_code == 302
        client.post("/logout/")


def test_test_client_logins_without_a_request_still_work(user):
    """Django's test client (and shell code) authenticate without a request: no lockout to count."""
    client = Client()
    for _ in range(LIMIT + 2):
        assert client.login(username="alice", password="wrong") is False
    assert client.login(username="alice", password="alice-password-1") is True


# --------------------------------------------------------------------------- tokens


def test_a_token_is_returned_as_before_and_works(user):
    response = token_post(APIClient(), "alice", "alice-password-1", REMOTE_ADDR=fresh_address())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expiry"}
    assert works(body["token"])
    expiry = timezone.datetime.fromisoformat(body["expiry"].replace("Z", "+00:00"))
    assert abs((expiry - timezone.now()) - timedelta(hours=720)) < timedelta(minutes=1)
    # Each exchange is its own token (one per script or device), and the first keeps working.
    second = obtain()
    assert second != body["token"] and works(body["token"]) and works(second)


def test_tokens_are_hashed_at_rest(user):
    token = obtain()
    row = auth_token_model().objects.get(user=user)
    assert row.digest == hashlib.sha512(token.encode()).hexdigest()
    stored = json.dumps([str(value) for value in auth_token_model().objects.values_list().get()])
    assert token not in stored
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS  # DRF's plain-text tokens are gone


def test_a_token_expires(user):
    token = obtain()
    auth_token_model().objects.update(expiry=timezone.now() - timedelta(seconds=1))
    assert not works(token)
    assert not auth_token_model().objects.exists()  # expired tokens are deleted on sight


def test_a_script_revokes_its_own_token(user):
    token, kept = obtain(), obtain()
    client = with_token(token)
    assert client.post(f"{TOKEN_URL}revoke/").status_code == 204
    assert not works(token)
    assert client.post(f"{TOKEN_URL}revoke/").status_code == 401
    assert works(kept)


def test_the_token_list_shows_no_secret_and_one_token_can_be_revoked(user, other_user):
    token, other = obtain(), obtain()
    client = with_token(other)
    listed = client.get(TOKENS_URL)
    assert listed.status_code == 200
    rows = listed.json()
    assert len(rows) == 2 and all(set(row) == {"id", "created", "expiry", "current"} for row in rows)
    text = listed.content.decode()
    assert token not in text and other not in text and token[:15] not in text
    target = next(row for row in rows if not row["current"])
    # Bob cannot see or revoke alice's tokens.
    bob = with_token(obtain("bob", "bob-password-1"))
    assert len(bob.get(TOKENS_URL).json()) == 1
    assert bob.delete(f"{TOKENS_URL}{target['id']}/").status_code == 404
    assert works(token)
    assert client.delete(f"{TOKENS_URL}{target['id']}/").status_code == 204
    assert not works(token) and works(other)
    assert client.delete(f"{TOKENS_URL}{target['id']}/").status_code == 404


@pytest.mark.parametrize("token_id", ["x", "0", "z" * 16, "../../etc", "a" * 200, "%00"])
def test_malformed_token_ids_are_404(api_client, token_id):
    assert api_client.delete(f"{TOKENS_URL}{token_id}/").status_code == 404


def test_the_browser_creates_a_token_with_its_session_and_csrf(user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post(TOKENS_URL).status_code == 403  # no CSRF token
    browser.get("/tokens/")
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(TOKENS_URL, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "created", "expiry", "current", "token"} and works(body["token"])
    assert browser.get(TOKENS_URL).json()[0]["id"] == body["id"]
    # A token cannot mint tokens (a stolen one would never expire).
    assert with_token(body["token"]).post(TOKENS_URL).status_code in (401, 403)


def test_tokens_per_user_are_capped_oldest_first(user):
    from experiments.services import tokens

    first = obtain()
    for _ in range(tokens.MAX_TOKENS_PER_USER):
        tokens.token_create(user=user)
    assert auth_token_model().objects.filter(user=user).count() == tokens.MAX_TOKENS_PER_USER
    assert not works(first)


# --------------------------------------------------------------------------- password changes


@pytest.fixture
def alice_tokens(user, other_user):
    return [obtain(), obtain()], obtain("bob", "bob-password-1")


def assert_only_bob_keeps_his(alice_tokens):
    mine, bobs = alice_tokens
    assert not any(works(token) for token in mine)
    assert works(bobs)


def test_set_password_and_save_kills_the_tokens(user, alice_tokens):
    user.set_password("a-new-password-2")
    user.save()
    assert_only_bob_keeps_his(alice_tokens)


def test_manage_py_changepassword_kills_the_tokens(user, alice_tokens, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a-new-password-2")
    call_command("changepassword", "alice", stdout=open("/dev/null", "w"))
    assert_only_bob_keeps_his(alice_tokens)


def test_the_admin_change_password_form_kills_the_tokens(user, staff_user, alice_tokens):
    admin = Client()
    admin.force_login(staff_user)
    response = admin.post(f"/admin/auth/user/{user.pk}/password/",
                          {"password1": "a-new-password-2", "password2": "a-new-password-2", "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_only_bob_keeps_his(alice_tokens)


def test_disabling_the_password_kills_the_tokens(user, alice_tokens):
    user.set_unusable_password()
    user.save()
    assert_only_bob_keeps_his(alice_tokens)


def test_other_saves_and_a_hash_upgrade_keep_the_tokens(user, alice_tokens):
    mine, _ = alice_tokens
    user.first_name = "Alice"
    user.save()
    user.is_active = True
    user.save(update_fields=["is_active"])
    user.refresh_from_db()
    user.save()
    assert all(works(token) for token in mine)
    # A login with a hash of an older hasher re-hashes the password (Django saves the user): no change.
    assert get_user_model().objects.get(pk=user.pk).password.startswith("md5$")
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher",
                                             "django.contrib.auth.hashers.MD5PasswordHasher"]):
        assert token_post(APIClient(), "alice", "alice-password-1", REMOTE_ADDR=fresh_address()).status_code == 200
    assert get_user_model().objects.get(pk=user.pk).password.startswith("pbkdf2_sha256$")  # upgraded
    assert all(works(token) for token in mine)


# --------------------------------------------------------------------------- behind the reverse proxy


def behind_proxy(client_address: str, forwarded_for: str | None = None) -> dict:
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": forwarded_for or client_address}


def test_tuner_num_proxies_drives_throttles_and_lockouts():
    import subprocess
    import sys

    code = ("import json; from tuner_site import settings as s; "
            "print(json.dumps([s.REST_FRAMEWORK['NUM_PROXIES'], s.AXES_CLIENT_IP_CALLABLE]))")
    out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "TUNER_NUM_PROXIES": "1"},
                         capture_output=True, text=True, check=True).stdout
    num_proxies, ip_callable = json.loads(out.strip().splitlines()[-1])
    assert num_proxies == 1 and ip_callable == "tuner_site.throttling.client_address"


@pytest.fixture
def one_proxy():
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        yield


def test_behind_one_proxy_each_client_has_its_own_lockout(user, one_proxy):
    attacker, alice = fresh_address(), fresh_address()
    client = APIClient()
    for _ in range(LIMIT):
        token_post(client, "alice", "wrong", **behind_proxy(attacker))
    assert token_post(client, "alice", "alice-password-1", **behind_proxy(attacker)).status_code == 429
    # Prepending a made-up address does not help: the proxy appends the real one, counted from the right.
    assert token_post(client, "alice", "alice-password-1",
                      **behind_proxy(attacker, f"{fresh_address()}, {attacker}")).status_code == 429
    assert token_post(client, "alice", "alice-password-1", **behind_proxy(alice)).status_code == 200
    login = Client()
    assert login.post("/login/", {"username": "alice", "password": "alice-password-1"},
                      **behind_proxy(attacker)).status_code == 429
    assert login.post("/login/", {"username": "alice", "password": "alice-password-1"},
                      **behind_proxy(alice)).status_code == 302


def test_behind_one_proxy_each_client_has_its_own_throttle(user, one_proxy):
    first, second = fresh_address(), fresh_address()
    client = APIClient()
    for attempt in range(20):  # other usernames: the throttle, not the lockout
        assert token_post(client, f"nobody-{attempt}", "x", **behind_proxy(first)).status_code == 400
    refused = token_post(client, "alice", "alice-password-1", **behind_proxy(first))
    assert refused.status_code == 429 and "throttled" in refused.json()["detail"]
    assert token_post(client, "alice", "alice-password-1", **behind_proxy(second)).status_code == 200


def test_without_proxies_forwarded_for_is_ignored(user):
    address = fresh_address()
    client = APIClient()
    for _ in range(LIMIT):
        token_post(client, "alice", "wrong", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=fresh_address())
    assert token_post(client, "alice", "alice-password-1", REMOTE_ADDR=address,
                      HTTP_X_FORWARDED_FOR=fresh_address()).status_code == 429


@pytest.mark.parametrize("forwarded_for", ["garbage", "1.2.3.4:80", "", "::1, not-an-ip", "\u00e9" * 300])
def test_a_malformed_forwarded_address_is_not_a_server_error(user, one_proxy, forwarded_for):
    client = APIClient()
    for _ in range(LIMIT + 1):
        response = token_post(client, "alice", "wrong", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)
        assert response.status_code in (400, 429), response.status_code
    assert Client().post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=PROXY,
                         HTTP_X_FORWARDED_FOR=forwarded_for).status_code in (200, 429)


# --------------------------------------------------------------------------- hostile input


HOSTILE_BODIES = [
    json.dumps({"username": "x" * 100_000, "password": "y"}),
    json.dumps({"username": {"nested": [1, {"a": None}]}, "password": ["p"]}),
    json.dumps({"username": "al\u0000ice", "password": "alice-password-1"}),
    json.dumps({"username": "alice", "password": "p" * 10_000}),
    json.dumps([{"username": "alice"}]),
    json.dumps("just a string"),
    "null", "{not json", "\xff\xfe", "[" * 20 + "]" * 20,  # deep nesting: tests/security/test_hostile_input.py
    json.dumps({"username": "alice", "password": "alice-password-1", "extra": "x" * (2 * 1024 * 1024)}),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_on_the_token_endpoints_are_4xx(user, body):
    script = APIClient()
    response = script.post(TOKEN_URL, body, content_type="application/json", REMOTE_ADDR=fresh_address())
    assert 400 <= response.status_code < 500, response.status_code
    if response["Content-Type"].startswith("application/json"):  # (over 1 MiB Django answers before DRF)
        assert "detail" in response.json() or response.status_code == 400
    token = obtain()
    for method, path in (("post", TOKENS_URL), ("delete", f"{TOKENS_URL}0123456789abcdef/"),
                         ("post", f"{TOKEN_URL}revoke/")):
        response = getattr(with_token(token), method)(path, body, content_type="application/json")
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
    browser = Client()
    browser.force_login(user)
    assert 400 <= browser.post(TOKENS_URL, body, content_type="application/json").status_code < 500
    assert browser.post("/login/", body, content_type="application/json").status_code < 500


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token \u00ff\u00fe", "Token " + "a" * 10_000,
                                    "Token abc\u0000def", "Token " + "0" * 64, "Bearer x", "Token ../../"])
def test_hostile_authorization_headers_are_401(user, header):
    response = APIClient().get("/api/experiments/", HTTP_AUTHORIZATION=header)
    assert response.status_code in (401, 403), response.status_code
