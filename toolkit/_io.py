"""The one way the toolkit writes a file: atomically.

:func:`atomic_write` writes to a temporary file in the same folder, flushes and fsyncs it, gives it the permissions
an ordinary ``open(path, "w")`` would (``0o666`` less the umask; ``mkstemp`` alone gives ``0o600``), then moves
it into place with ``os.replace``. A reader therefore sees the old file or the new one, never half of one, and an
error (or an interrupted kernel) leaves no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (``str`` is UTF-8 encoded) to ``path`` atomically, creating missing parent folders.

    Returns the path written.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"atomic_write takes bytes or str, not {type(data).__name__}; serialise it first "
                        "(e.g. json.dumps(obj) or safetensors.torch.save(tensors))")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
