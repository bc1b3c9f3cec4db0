"""Outputs on local disk, content-addressed, served by signed, expiring URLs.

A key is "<2 hex>/<sha256>.<ext>": the same bytes are stored once, and a key that does not match
that shape is refused before it touches the file system, so no path escapes the outputs folder.
The URL's HMAC signature is the capability: Replicate's JS client fetches outputs with no token.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

KEY_PATTERN = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,5}$")
THUMBNAIL_SIDE = 256

CONTENT_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp4": "video/mp4",
    "json": "application/json",
    "txt": "text/plain",
    "bin": "application/octet-stream",
}


class BadKey(ValueError):
    pass


class OutputStore:
    def __init__(self, root: Path, signing_key: bytes, ttl_s: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._key = signing_key
        self.ttl_s = ttl_s

    def put(self, data: bytes, extension: str) -> str:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest[:2]}/{digest}.{extension.lower().lstrip('.')}"
        path = self.path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a crash never leaves a half-written file under a valid key.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        return key

    def path(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key):
            raise BadKey(key)
        return self.root / key

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def put_thumbnail(self, image) -> str:
        """A WebP at most 256 px on its longer side, of a PIL image or an encoded one's bytes."""
        from PIL import Image

        with Image.open(io.BytesIO(image)) if isinstance(image, bytes) else image.copy() as small:
            small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            small.convert("RGB").save(buffer, format="WEBP", quality=80)
        return self.put(buffer.getvalue(), "webp")

    # -- signed URLs --------------------------------------------------------------------------

    def sign(self, key: str, base_url: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.ttl_s)
        return f"{base_url.rstrip('/')}/files/{key}?{urlencode({'expires': expires, 'sig': self._mac(key, expires)})}"

    def verify(self, key: str, expires: int, signature: str) -> bool:
        if expires < time.time():
            return False
        return hmac.compare_digest(self._mac(key, expires), signature)

    def _mac(self, message: str, expires: int) -> str:
        return hmac.new(self._key, f"{message}:{expires}".encode(), hashlib.sha256).hexdigest()

    def sign_token(self, message: str, expires: int) -> str:
        """The same HMAC for other capability URLs (the prediction stream)."""
        return self._mac(message, expires)


def content_type_for(key: str) -> str:
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")
