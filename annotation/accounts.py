"""Annotator accounts: create them non-interactively and get their API tokens.

Label Studio's community edition makes users through its sign-up page, reached with the
organisation's invite link. The SDK has the invite link (``organizations.invites``) but not
sign-up or log-in, which are HTML forms: this module drives those two forms with plain HTTP
(``httpx``, with Django's CSRF cookie), then reads the user's legacy API token from
``/api/current-user/token`` in that session. Running it again for an existing account logs
in instead, so account setup is idempotent. The users it makes are ordinary members (not
staff, not superusers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import httpx

from hexainst.kernel.errors import UserError


class AccountError(UserError):
    """An annotator account could not be created or logged in."""


@dataclass(frozen=True)
class Account:
    """One person's login: ``role`` is ``junior`` or ``senior``; ``name`` is what verdicts record."""

    role: str
    name: str
    email: str
    password: str


def invite_token(client) -> str:
    """The organisation's invite token, from the SDK's invite link (``/user/signup/?token=...``)."""
    link = client.organizations.invites.get_invite_link()
    token = (parse_qs(urlparse(link.invite_url or "").query).get("token") or [None])[0] or getattr(link, "token", None)
    if not token:
        raise AccountError(f"the server's invite link has no token: {link!r}")
    return token


def _csrf(http: httpx.Client, path: str) -> str:
    page = http.get(path)
    token = http.cookies.get("csrftoken")
    if not token:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if not match:
            raise AccountError(f"{path}: no CSRF token in the page (HTTP {page.status_code})")
        token = match.group(1)
    return token


def _logged_in(http: httpx.Client) -> bool:
    return http.get("/api/current-user/whoami").status_code == 200


def _login(http: httpx.Client, account: Account) -> bool:
    token = _csrf(http, "/user/login/")
    http.post(
        "/user/login/",
        data={"email": account.email, "password": account.password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{http.base_url}user/login/"},
    )
    return _logged_in(http)


def _signup(http: httpx.Client, account: Account, invite: str) -> bool:
    path = f"/user/signup/?token={invite}"
    token = _csrf(http, path)
    response = http.post(
        path,
        data={"email": account.email, "password": account.password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{http.base_url}user/signup/"},
    )
    if not _logged_in(http):
        found = re.findall(r'class="[^"]*(?:error|field_errors)[^"]*"[^>]*>([^<]+)<', response.text)
        detail = "; ".join(s.strip() for s in found if s.strip()) or f"HTTP {response.status_code}"
        raise AccountError(f"sign-up of {account.email} failed: {detail}")
    return True


def ensure_account(base_url: str, invite: str, account: Account, timeout: float = 30.0) -> str:
    """Make sure ``account`` exists (sign up with the invite, or log in); return its API token."""
    with httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=True) as http:
        if not _login(http, account):
            http.cookies.clear()
            _signup(http, account, invite)
        response = http.get("/api/current-user/token")
        if response.status_code != 200 or "token" not in response.json():
            raise AccountError(
                f"{account.email}: cannot read the API token (HTTP {response.status_code}); "
                "was the server started with --enable-legacy-api-token?"
            )
        return str(response.json()["token"])
