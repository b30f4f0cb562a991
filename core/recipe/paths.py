"""File paths and URLs from users, resolved with one clear message for each way they can be wrong.

``pathlib`` answers a NUL byte, ``~nosuchuser``, a symlink loop or an over-long name with ValueError,
RuntimeError or OSError, depending on the call; here each becomes a :class:`PathProblem` that reads
after a noun: ``f"image file {problem}"``.
"""

from __future__ import annotations

import errno
import re
import stat
from pathlib import Path

__all__ = ["PathProblem", "SCHEMES", "absolute", "existing_file", "shown", "url_problem"]

SCHEMES = ("http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")
MAX_SHOWN = 120  # characters of a path a message shows; a 5,000-character one would bury the message


class PathProblem(ValueError):
    """A path that cannot name a usable file; the message reads after a noun such as "image file".

    ``missing`` is true when nothing is there at all (rather than a directory, a loop or a malformed path).
    """

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def shown(path: str | Path) -> str:
    """``path`` for a message: whole when short, else its start and end around an ellipsis."""
    text = str(path)
    return text if len(text) <= MAX_SHOWN else f"{text[:60]}…{text[-40:]} ({len(text)} characters)"


def absolute(value: str, anchor: Path) -> Path:
    """``value`` with ``~`` expanded, made absolute against ``anchor`` and resolved; PathProblem if it cannot be."""
    if "\0" in value:
        raise PathProblem(f"{shown(repr(value))} contains a NUL byte, which no file name can hold")
    try:
        expanded = Path(value).expanduser()
    except RuntimeError:  # ~name of a user this system does not know
        user = value[1:].split("/", 1)[0]
        raise PathProblem(f"{shown(value)} starts with ~{user}, but there is no user '{user}' on this system") from None
    try:
        return (anchor / expanded).resolve()
    except RuntimeError:  # Python before 3.13 reports a loop here; later ones leave it to the first stat
        raise PathProblem(f"{shown(anchor / expanded)} is a loop of symbolic links") from None
    except OSError as exc:
        raise PathProblem(_os_problem(anchor / expanded, exc)) from None


def existing_file(value: str, anchor: Path) -> Path:
    """The resolved path of an existing regular file; PathProblem naming what is wrong otherwise."""
    path = absolute(value, anchor)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise PathProblem(_os_problem(path, exc), missing=exc.errno == errno.ENOENT) from None
    if stat.S_ISDIR(mode):
        raise PathProblem(f"{shown(path)} is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise PathProblem(f"{shown(path)} is not a regular file")
    return path


def _os_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"not found: {shown(path)}"
    if exc.errno == errno.ELOOP:
        return f"{shown(path)} is a loop of symbolic links"
    if exc.errno == errno.ENAMETOOLONG:
        return f"{shown(path)} is a longer path, or has a longer name, than this system allows"
    return f"{shown(path)}: {exc.strerror or exc}"


def url_problem(source: str) -> str | None:
    """Why ``source``, which names a URL scheme, cannot be fetched; None for http(s) or for a plain path."""
    match = _SCHEME.match(source)
    # one letter before the colon is a Windows drive (C:\...), not a scheme
    if match is None or len(match.group(1)) == 1 or not (match.group(2) or match.group(1).lower() in ("file", "ftp")):
        return None
    scheme = match.group(1).lower()
    if scheme in SCHEMES:
        return None
    return (f"'{scheme}:' URLs are not supported: stylefw downloads {' and '.join(s + '://' for s in SCHEMES)} URLs; "
            "for a local file, give its path")
