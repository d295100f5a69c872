"""Where the token-signing keys come from: a JWKS file or a JWKS URL, re-read in the background.

Identity providers rotate their signing keys. The key set is read at start-up (a replica
that cannot read it refuses to start: it could authenticate no one) and again every
``auth_jwks_refresh_seconds``; a failed refresh keeps the keys it has and says so in the log.
"""

import asyncio
import logging
from typing import Any

import httpx

from api.auth import TokenVerifier
from api.settings import Settings

logger = logging.getLogger(__name__)

_FETCH_TIMEOUT_SECONDS = 5.0


class KeySet:
    """The current :class:`TokenVerifier`, replaced whole when the key set is re-read."""

    def __init__(self, settings: Settings) -> None:
        self._file = settings.auth_jwks_file
        self._url = str(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._refresh_seconds = settings.auth_jwks_refresh_seconds
        self._verifier: TokenVerifier | None = None

    @property
    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            raise RuntimeError("the key set was not loaded")
        return self._verifier

    async def load(self) -> None:
        """Read the key set; raises ValueError if it cannot be read or holds no usable key."""
        if self._url is None:
            assert self._file is not None  # Settings demands one of the two
            self._verifier = await asyncio.to_thread(
                TokenVerifier.from_jwks_file,
                self._file,
                issuer=self._issuer,
                audience=self._audience,
            )
            return
        document = await self._fetch(self._url)
        try:
            self._verifier = TokenVerifier(document, issuer=self._issuer, audience=self._audience)
        except ValueError as exc:
            raise ValueError(f"JWKS from {self._url}: {exc}") from exc

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.load()
            except ValueError as exc:
                logger.warning("keeping the previous signing keys: %s", exc)

    @staticmethod
    async def _fetch(url: str) -> Any:
        try:
            async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_SECONDS) as client:
                response = await client.get(url)
                response.raise_for_status()
                return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ValueError(f"cannot read JWKS from {url}: {exc}") from None
