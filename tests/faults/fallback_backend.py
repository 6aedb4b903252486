"""A module with an optional backend that needs memory to load and falls back when it cannot:
the pattern of ``hashlib`` (no OpenSSL: no ``md5``) and many others. Imported under a memory
limit, it stays cached without its fast path for the life of the process."""

from __future__ import annotations

import mmap

try:
    _tables = mmap.mmap(-1, 4 * 2**30)  # the backend's tables: 4 GiB of address space, untouched
    _tables.close()

    def digest(data: bytes) -> int:
        """The backend's fast path."""
        return sum(data) % 251

except (MemoryError, OSError):
    pass  # no backend: ``digest`` is missing, like hashlib.md5 without OpenSSL
