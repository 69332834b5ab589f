"""The aws-chunked body encoding (Content-Encoding: aws-chunked), decoded incrementally. Pure.

    <hex size>[;chunk-signature=<64 hex>]\r\n<size bytes>\r\n ... 0[;chunk-signature=…]\r\n
    [<trailer name>:<value>\r\n ... [x-amz-trailer-signature:<64 hex>\r\n]]\r\n

`feed(data)` returns the payload bytes found so far; `finish()` checks that the body ended where the
encoding says it does. With a `signer` (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) every chunk's
signature is checked as the chunk ends, chained from the seed signature; a mismatch raises
`ChunkSignatureMismatch`. Trailing headers (checksums) are kept in `trailers`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

MAX_LINE = 4096
#: (previous signature, sha256 hex of the chunk) -> expected signature
ChunkSigner = Callable[[str, str], str]
#: (previous signature, canonical trailer bytes) -> expected trailer signature
TrailerSigner = Callable[[str, bytes], str]


class MalformedChunks(ValueError):
    """The body is not valid aws-chunked encoding."""


class ChunkSignatureMismatch(ValueError):
    """A chunk's signature is not the one its data and the seed signature give."""


class ChunkedDecoder:
    def __init__(self, signer: ChunkSigner | None = None, seed_signature: str = "",
                 trailer_signer: TrailerSigner | None = None) -> None:
        self._buf = bytearray()
        self._state = "header"
        self._remaining = 0
        self._signer = signer
        self._trailer_signer = trailer_signer
        self._previous = seed_signature
        self._claimed = ""
        self._hash = hashlib.sha256() if signer is not None else None
        self.trailers: dict[str, str] = {}
        self._trailer_lines: list[tuple[str, str]] = []
        self.decoded = 0

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._state == "data" and not self._buf:
            # the common case: payload bytes straight through, no copying into the buffer
            take = min(self._remaining, len(data))
            if take:
                self._data(data[:take] if take < len(data) else data, out)
                data = data[take:]
        self._buf += data
        while self._step(out):
            pass
        return out

    def _data(self, piece: bytes, out: list[bytes]) -> None:
        out.append(piece)
        self._remaining -= len(piece)
        self.decoded += len(piece)
        if self._hash is not None:
            self._hash.update(piece)
        if self._remaining == 0:
            self._state = "data-end"

    def _line(self) -> str | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise MalformedChunks("chunk header line too long")
            return None
        line = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end + 2]
        return line

    def _step(self, out: list[bytes]) -> bool:
        state = self._state
        if state == "header":
            line = self._line()
            if line is None:
                return False
            size_text, _, extension = line.partition(";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                raise MalformedChunks(f"bad chunk size {size_text!r}") from None
            name, _, value = extension.partition("=")
            self._claimed = value.strip() if name.strip() == "chunk-signature" else ""
            if self._signer is not None and not self._claimed:
                raise MalformedChunks("chunk without chunk-signature")
            self._remaining = size
            if size == 0:
                self._check_chunk()
                self._state = "trailer"
            else:
                self._state = "data"
            return True
        if state == "data":
            if not self._buf:
                return False
            take = min(self._remaining, len(self._buf))
            piece = bytes(self._buf[:take])
            del self._buf[:take]
            self._data(piece, out)
            return True
        if state == "data-end":
            if len(self._buf) < 2:
                return False
            if self._buf[:2] != b"\r\n":
                raise MalformedChunks("chunk data not followed by CRLF")
            del self._buf[:2]
            self._check_chunk()
            self._state = "header"
            return True
        if state == "trailer":
            line = self._line()
            if line is None:
                return False
            if line == "":
                self._check_trailer()
                self._state = "done"
                return True
            name, sep, value = line.partition(":")
            if not sep:
                raise MalformedChunks(f"bad trailer line {line!r}")
            name = name.strip().lower()
            if name == "x-amz-trailer-signature":
                self.trailers[name] = value.strip()
            else:
                self.trailers[name] = value.strip()
                self._trailer_lines.append((name, value.strip()))
            return True
        if self._buf.strip():
            raise MalformedChunks("data after the last chunk")
        self._buf.clear()
        return False

    def _check_chunk(self) -> None:
        if self._signer is None or self._hash is None:
            return
        expected = self._signer(self._previous, self._hash.hexdigest())
        if not hmac.compare_digest(expected, self._claimed):
            raise ChunkSignatureMismatch("chunk signature mismatch")
        self._previous = expected
        self._hash = hashlib.sha256()

    def _check_trailer(self) -> None:
        claimed = self.trailers.pop("x-amz-trailer-signature", None)
        if self._trailer_signer is None:
            return
        if claimed is None:
            raise MalformedChunks("signed trailer without x-amz-trailer-signature")
        canonical = "".join(f"{name}:{value}\n" for name, value in self._trailer_lines).encode()
        if not hmac.compare_digest(self._trailer_signer(self._previous, canonical), claimed):
            raise ChunkSignatureMismatch("trailer signature mismatch")

    def finish(self) -> None:
        """The body ended: raise MalformedChunks unless the encoding ended too."""
        if self._state == "trailer" and not self._buf:
            self._check_trailer()  # no trailer section sent after the final chunk: allowed
            self._state = "done"
        if self._state != "done":
            raise MalformedChunks("the body ended inside a chunk")
