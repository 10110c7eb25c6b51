"""Request bodies as the outbound transport encodes them, response bodies as it decodes them."""

from __future__ import annotations

import json as jsonlib
import zlib
from typing import Any

__all__ = ["Decoder", "encode_body"]


def encode_body(content: bytes | str | None, json: Any) -> tuple[bytes | None, str | None]:
    """The request body and its default content type, as httpx encoded them.

    ``content`` wins over ``json``; JSON is compact, UTF-8, and refuses NaN (ValueError).
    """
    if content is not None:
        return (content.encode() if isinstance(content, str) else bytes(content)), None
    if json is not None:
        text = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode(), "application/json"
    return None, None


class Decoder:
    """One content coding, its output bounded (a zip bomb stops at the cap); ``deflate``
    is tried zlib-wrapped, then raw (as httpx did)."""

    def __init__(self, coding: str):
        self.raw_fallback = coding == "deflate"
        self.inflate = zlib.decompressobj(zlib.MAX_WBITS | (16 if coding == "gzip" else 0))

    def decode(self, data: bytes, limit: int, last: bool) -> tuple[bytes, bool]:
        """Decode ``data``: at most ``limit`` bytes of output, and whether it comes to more
        (then the rest is not decoded: nothing more than ``limit`` is ever held)."""
        try:
            out = self.inflate.decompress(data, limit)
        except zlib.error:
            if not self.raw_fallback:
                raise
            self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self.inflate.decompress(data, limit)
        self.raw_fallback = self.raw_fallback and not data
        if self.inflate.unconsumed_tail:
            return out, True
        if last:
            out += self.inflate.flush()
        return out[:limit], len(out) > limit
