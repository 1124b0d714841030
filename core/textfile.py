"""Text files read one way everywhere (setup file, matrix files, CSV, secret files): UTF-8, with a size limit."""

from __future__ import annotations

from pathlib import Path


class TextFileError(ValueError):
    """A file that is readable but is not text we take: too big or not UTF-8; ``line`` when known."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.message = message


def read_text(path: Path, *, max_bytes: int | None = None, kind: str = "file") -> str:
    """The file's text (a UTF-8 byte order mark dropped).

    An ``OSError`` (missing, a directory, a symlink loop, no permission) is the
    caller's to word; a file over ``max_bytes`` or not UTF-8 raises :class:`TextFileError`.
    """
    with path.open("rb") as f:
        # Read one byte past the limit, never the whole of a huge file.
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise TextFileError(path, None, f"over {max_bytes // 1024} KiB, the most a {kind} may be: "
                                        "check that this is the right file")
    return decode_utf8(path, data)


def decode_utf8(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1  # the line of the first bad byte
        raise TextFileError(path, line, f"not UTF-8 text (byte {exc.start}, line {line}); save it as UTF-8") \
            from None
