"""Key pairs for functions: each function gets its own S3 access key, derived from lamina's secret,
so boto3 inside a function signs requests lamina can verify without lamina storing anything.

    access key id  LKFN + 16 hex chars of HMAC(secret, "function:" + name)
    secret         base64 of HMAC(secret, "s3-key:" + access key id)

Anyone who can compute a valid pair holds lamina's secret already. These keys open the S3 front door
only: the Lambda API does not accept them (a function cannot redeploy functions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

PREFIX = "LKFN"
_KEY = re.compile(r"^LKFN[0-9A-F]{16}$")


class FunctionKeys:
    def __init__(self, master_secret: str) -> None:
        self._master = master_secret.encode()

    def _mac(self, message: str) -> bytes:
        return hmac.new(self._master, message.encode(), hashlib.sha256).digest()

    def pair(self, function: str) -> tuple[str, str]:
        access_key_id = PREFIX + self._mac("function:" + function).hex()[:16].upper()
        return access_key_id, self._secret(access_key_id)

    def _secret(self, access_key_id: str) -> str:
        return base64.b64encode(self._mac("s3-key:" + access_key_id)).decode()[:40]

    def secret_for(self, access_key_id: str) -> str | None:
        return self._secret(access_key_id) if _KEY.match(access_key_id) else None
