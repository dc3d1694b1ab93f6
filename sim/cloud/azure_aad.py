"""SIMULATED Azure AD (Microsoft Entra) token endpoint for one tenant and one app registration.

Serves what MSAL (under `azure.identity.ClientSecretCredential`) asks for when the authority is
`https://<twin>` and instance discovery is disabled: the tenant's OpenID configuration at
`/{tenant}/v2.0/.well-known/openid-configuration` and the client-credentials grant at
`POST /{tenant}/oauth2/v2.0/token`. Issued tokens are opaque bearer strings that
`sim.cloud.azure.AzureTwin` checks on every ARM request (`TokenIssuer.check`). Errors use AAD's
`{"error": ..., "error_description": "AADSTS...: ..."}` form.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from sim.cloud.azure_arm import ArmError

TOKEN_SECONDS = 3599
# The audiences ARM accepts: the public-cloud resource ids (what the SDK's default scope asks for).
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")


@dataclass(frozen=True)
class _Token:
    client_id: str
    audience: str
    expires_at: float


def _aad_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response(
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(description[6:13]) if description[6:13].isdigit() else 0],
        },
        status=status,
    )


class TokenIssuer:
    """The tenant, the app registration (client id/secret) and the tokens issued so far."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        audiences: tuple[str, ...] = ARM_AUDIENCES,
    ) -> None:
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.audiences = audiences
        self._tokens: dict[str, _Token] = {}

    def routes(self, base_url: str) -> list[web.RouteDef]:
        async def openid(request: web.Request) -> web.Response:
            tenant = request.match_info["tenant"]
            if tenant != self.tenant_id:
                return _aad_error(
                    400,
                    "invalid_tenant",
                    f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure "
                    "you have the correct tenant ID and are signing into the "
                    "correct cloud.",
                )
            root = f"{base_url}/{tenant}"
            return web.json_response(
                {
                    "issuer": f"{root}/v2.0",
                    "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{root}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                    "jwks_uri": f"{root}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "code id_token", "token"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                    ],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                    "tenant_region_scope": "NA",
                }
            )

        async def token(request: web.Request) -> web.Response:
            tenant = request.match_info["tenant"]
            form = {k: str(v) for k, v in (await request.post()).items()}
            if tenant != self.tenant_id:
                return _aad_error(
                    400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found."
                )
            if form.get("grant_type") != "client_credentials":
                return _aad_error(
                    400,
                    "unsupported_grant_type",
                    "AADSTS70003: The app requested an unsupported grant type "
                    f"'{form.get('grant_type')}'.",
                )
            if form.get("client_id") != self.client_id:
                return _aad_error(
                    400,
                    "unauthorized_client",
                    f"AADSTS700016: Application with identifier "
                    f"'{form.get('client_id')}' was not found in the directory.",
                )
            if not secrets.compare_digest(str(form.get("client_secret", "")), self.client_secret):
                return _aad_error(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided. Ensure the "
                    "secret being sent in the request is the client secret value, "
                    "not the client secret ID.",
                )
            scopes = str(form.get("scope", "")).split()
            resource = next(
                (s[: -len("/.default")] for s in scopes if s.endswith("/.default")), None
            )
            if resource is None:
                return _aad_error(
                    400,
                    "invalid_scope",
                    "AADSTS1002012: The provided value for scope is not valid. "
                    "Client credential flows must have a scope value with "
                    "/.default suffixed to the resource identifier.",
                )
            value = secrets.token_urlsafe(32)
            self._tokens[value] = _Token(
                self.client_id, resource.rstrip("/"), time.time() + TOKEN_SECONDS
            )
            return web.json_response(
                {
                    "token_type": "Bearer",
                    "expires_in": TOKEN_SECONDS,
                    "ext_expires_in": TOKEN_SECONDS,
                    "access_token": value,
                }
            )

        return [
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", openid),
            web.post("/{tenant}/oauth2/v2.0/token", token),
        ]

    def check(self, authorization: str | None) -> str:
        """The client id behind an ARM request's `Authorization` header, or ArmError 401."""
        if not authorization:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an "
                "invalid format.",
            )
        tok = self._tokens.get(value.strip())
        if tok is None:
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if tok.expires_at < time.time():
            raise ArmError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        if tok.audience not in self.audiences:
            raise ArmError(
                401,
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{tok.audience}'. It should exactly match with one of the allowed "
                f"audiences {list(self.audiences)}.",
            )
        return tok.client_id
