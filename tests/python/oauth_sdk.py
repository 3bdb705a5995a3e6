"""The official MCP Python SDK's OAuth client against MCP Router's built-in authorization server.

    oauth_sdk.py BASE_URL ADMIN_PASSCODE PROVIDER

`mcp.client.auth.OAuthClientProvider` does the whole flow on its own: the 401 challenge,
protected resource metadata (RFC 9728), authorization server metadata (RFC 8414), dynamic
client registration (RFC 7591), PKCE and the token exchange. Where a person would act in a
browser, this script plays the admin headlessly: it logs in with the passcode, reads the
consent page, checks it shows the client, its redirect URI and the scopes, and approves
with the session's CSRF token. Then it calls PROVIDER's `whoami` through the transparent
view, connects a second time with the stored tokens (no second consent), and prints one
JSON object with what it observed; exits 1 on a failure.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.dont_write_bytecode = True

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.types import TextContent

from common import CLIENT_INFO, READ_TIMEOUT_S, run

REDIRECT_URI = "http://127.0.0.1:9/callback"


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class HeadlessAdmin:
    """The browser step: the admin logs in and approves on the consent page."""

    def __init__(self, base: str, passcode: str) -> None:
        self.base = base
        self.passcode = passcode
        self.result: AuthorizationCodeResult | None = None
        self.consents: list[dict[str, Any]] = []

    async def redirect(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            login = await http.post(f"{self.base}/api/v1/login", json={"passcode": self.passcode, "cookie": True})
            login.raise_for_status()
            page = await http.get(authorization_url)
            if page.status_code != 200:
                raise RuntimeError(f"consent page: HTTP {page.status_code}: {page.text}")
            html = page.text
            field = lambda name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)  # noqa: E731
            self.consents.append(
                {
                    "shows_redirect_uri": REDIRECT_URI in html,
                    "shows_client_name": "mcpr python sdk e2e" in html,
                    "scope": field("scope"),
                    "csrf_is_the_session_csrf": field("csrf") == login.json()["csrf"],
                }
            )
            decision = await http.post(
                f"{self.base}/oauth/authorize",
                data={"request_id": field("request_id"), "csrf": field("csrf"), "decision": "approve"},
            )
            location = decision.headers.get("location")
            if not location or not location.startswith(REDIRECT_URI):
                raise RuntimeError(f"approval did not redirect to the client: {decision.status_code} {decision.text}")
            query = parse_qs(urlparse(location).query)
            self.result = AuthorizationCodeResult(
                code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
            )

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None, "the redirect handler did not run"
        result, self.result = self.result, None
        return result


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def call_whoami(url: str, provider: OAuthClientProvider) -> str:
    async with httpx2.AsyncClient(auth=provider, timeout=READ_TIMEOUT_S) as http:
        async with Client(
            streamable_http_client(url, http_client=http), client_info=CLIENT_INFO, read_timeout_seconds=READ_TIMEOUT_S
        ) as client:
            result = await client.call_tool("whoami", {})
            if result.is_error:
                raise RuntimeError(f"whoami failed: {result}")
            return "".join(b.text for b in result.content if isinstance(b, TextContent))


async def main(base: str, passcode: str, provider_name: str) -> dict[str, Any]:
    url = f"{base}/mcp/p/{provider_name}"
    admin = HeadlessAdmin(base, passcode)
    storage = MemoryStorage()
    metadata = OAuthClientMetadata(
        client_name="mcpr python sdk e2e",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    make_provider = lambda: OAuthClientProvider(  # noqa: E731
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=admin.redirect,
        callback_handler=admin.callback,
    )
    first = await call_whoami(url, make_provider())
    assert storage.tokens is not None and storage.client_info is not None
    token_claims = claims(storage.tokens.access_token)
    # Again with the stored tokens: no second consent.
    second = await call_whoami(url, make_provider())
    return {
        "whoami": [first, second],
        "consents": admin.consents,
        "client_id": storage.client_info.client_id,
        "token": {
            "iss": token_claims["iss"],
            "aud": token_claims["aud"],
            "scope": token_claims["scope"],
            "client_id": token_claims["client_id"],
            "has_refresh_token": storage.tokens.refresh_token is not None,
        },
    }


if __name__ == "__main__":
    base_url, admin_passcode, provider = sys.argv[1:4]
    run("oauth_sdk.py", lambda: main(base_url, admin_passcode, provider))
