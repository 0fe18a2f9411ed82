"""Give freed heap memory back to the operating system.

A worker's live state is small next to what processing allocates and frees
on the way (decoded records, batches, rendered pages). glibc keeps freed
memory inside the process for reuse and returns it only from the top of its
heaps, so after a backfill or a recovery the RSS stays near its peak long
after the objects are gone. ``malloc_trim(0)`` releases every free page it
can; it costs a few milliseconds and changes no object. Elsewhere (another
C library, no ``malloc_trim``) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_TRIM = _malloc_trim()


def release() -> bool:
    """Return free heap pages to the OS; False where that is not possible."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
