"""Time-limited download links for code packages (GetFunction's Code.Location)."""

from __future__ import annotations

import hashlib
import hmac


class CodeLinks:
    def __init__(self, key: bytes, base_url: str, ttl_s: int = 600) -> None:
        self._key = key
        self._base = base_url
        self._ttl = ttl_s

    def _signature(self, sha: str, expires: int) -> str:
        return hmac.new(self._key, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, sha: str, now: float) -> str:
        expires = int(now) + self._ttl
        return f"{self._base}/_lamina/code/{sha}.zip?expires={expires}&signature={self._signature(sha, expires)}"

    def valid(self, sha: str, expires: str, signature: str, now: float) -> bool:
        try:
            when = int(expires)
        except ValueError:
            return False
        return when >= now and hmac.compare_digest(self._signature(sha, when), signature)
