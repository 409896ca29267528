"""Download, check and unpack files: the one place livermets reaches the network.

Every download goes through :func:`fetch`: pooch (:func:`pooch.retrieve`) with a resumable downloader
(:class:`ResumableDownload`) that streams into ``<file>.part`` beside the destination and, when a broken download is
started again, asks the server only for the missing bytes (HTTP ``Range``). pooch then checks the SHA-256 of the
whole file and moves it onto its final name; a file whose hash differs is deleted. The only request ever made is the
``GET`` of the file itself (no usage statistics, no version check, nothing sent).

When no hash is published, the first download is accepted with a warning that prints its SHA-256 (trust on first
use): the caller records it and checks it on every later use. A hash given by the user (``--sha256``) or published
with the file is always checked.

Archives are unpacked by :func:`unpack_zip` into a hidden folder beside the destination (same file system) and
renamed onto it only when every member was extracted and checked, so a model folder is either complete or absent.

The home folder of downloaded data is :func:`home`: ``LIVERMETS_HOME`` if set, else the platform's user cache folder
for ``livermets`` (platformdirs, e.g. ``~/.cache/livermets`` on Linux).

Examples
--------
>>> got = fetch("https://example.org/w.zip", home() / "downloads", sha256=None)  # doctest: +SKIP
>>> got.trust, got.sha256[:8]  # doctest: +SKIP
('first-use', '3b1f0c2a')
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from livermets.atomic import staged_folder
from livermets.errors import UserInputError

HOME_ENV = "LIVERMETS_HOME"
PART_SUFFIX = ".part"
CHUNK = 1 << 20
STREAM_CHUNK = 1 << 16  # a broken transfer loses at most this much of what arrived
TIMEOUT_S = 60.0
log = logging.getLogger(__name__)


def home() -> Path:
    """``$LIVERMETS_HOME``, or the user cache folder of livermets (platformdirs)."""
    given = os.environ.get(HOME_ENV)
    if given:
        return Path(given).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("livermets", appauthor=False))


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_sha256(value: str | None, what: str = "sha256") -> str | None:
    """A SHA-256 as 64 lower-case hex digits (an optional ``sha256:`` prefix is dropped); ``None`` stays ``None``.

    Raises
    ------
    UserInputError
        Not 64 hex digits.
    """
    if value is None:
        return None
    text = value.strip().lower().removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise UserInputError(f"{what} {value!r}: expected 64 hexadecimal digits")
    return text


@dataclass(frozen=True)
class Fetched:
    """A checked file: where it is, its SHA-256, and whether that hash was ``pinned`` or accepted on ``first-use``."""

    path: Path
    sha256: str
    trust: str


def warn_first_use(source: str, sha256: str) -> None:
    """The warning of a file accepted without a known hash: it prints the hash to record or pin."""
    log.warning("%s: no published SHA-256; accepted on first use with SHA-256 %s (recorded and checked from now on; "
                "pin it elsewhere with --sha256)", source, sha256)


def _accept(path: Path, actual: str, expected: str | None, source: str, warn: bool = True) -> Fetched:
    """Compare a file's hash with the expected one; without one, accept it on first use (``warn``: say so now)."""
    if expected is None:
        if warn:
            warn_first_use(source, actual)
        return Fetched(path, actual, "first-use")
    if actual != expected:
        raise UserInputError(f"{source}: SHA-256 {actual} does not match the expected {expected} (wrong or "
                             "corrupted file; nothing installed)")
    return Fetched(path, actual, "pinned")


def check_file(path: str | os.PathLike[str], sha256: str | None, warn: bool = True) -> Fetched:
    """Hash a local file (``--from-file``) and check it like a download (``warn``: as in :func:`fetch`).

    Raises
    ------
    UserInputError
        The file is missing or its SHA-256 differs from ``sha256``.
    """
    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"{file}: no such file")
    return _accept(file, sha256sum(file), normalise_sha256(sha256), str(file), warn)


class ResumableDownload:
    """A pooch downloader that resumes a broken download from ``<destination>.part`` (HTTP ``Range``).

    pooch calls it with a temporary output path beside the destination; the bytes go to the stable ``.part`` file,
    which is moved onto pooch's temporary path once the server has sent everything (pooch then checks the hash and
    renames it). An interrupted transfer keeps the ``.part`` file for the next attempt. ``sha256`` holds the hash of
    the last completed file.
    """

    def __init__(self, part: Path, progress: bool = True, timeout: float = TIMEOUT_S) -> None:
        self.part = part
        self.progress = progress
        self.timeout = timeout
        self.sha256: str | None = None

    def __call__(self, url: str, output_file: str | Any, pooch: Any, check_only: bool = False) -> bool | None:
        if check_only:  # pooch asks whether the file exists on the server: never asked here (no extra request)
            return True
        import requests

        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, stream=True, timeout=self.timeout, headers=headers) as response:
            if offset and response.status_code == 416:  # the .part is complete or longer than the file: restart
                self.part.unlink()
                return self(url, output_file, pooch)
            response.raise_for_status()
            if offset and response.status_code != 206:  # the server ignored the range: start again
                offset = 0
            total = _total_size(response, offset)
            digest = _hash_prefix(self.part) if offset else hashlib.sha256()
            with open(self.part, "ab" if offset else "wb") as handle, _bar(self.part.name, total, offset,
                                                                           self.progress) as advance:
                for chunk in response.iter_content(STREAM_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
            size = self.part.stat().st_size
            if total is not None and size < total:
                raise requests.exceptions.ChunkedEncodingError(f"got {size} of {total} bytes")
        self.sha256 = digest.hexdigest()
        os.replace(self.part, output_file)
        return None


def _total_size(response: Any, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None and length.isdigit() else None


def _hash_prefix(path: Path) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest


@contextlib.contextmanager
def _bar(name: str, total: int | None, done: int, show: bool) -> Iterator[Any]:
    """A rich byte-progress bar on a terminal; nothing otherwise."""
    from livermets.logs import console

    if not show or not console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(name, total=total, completed=done)
        yield lambda n: bar.advance(task, n)


def fetch(url: str, directory: str | os.PathLike[str], filename: str | None = None, sha256: str | None = None,
          progress: bool = True, warn: bool = True) -> Fetched:
    """Download ``url`` into ``directory/filename`` (resuming a ``.part`` left by a broken download) and check it.

    Parameters
    ----------
    url
        The file (``http(s)://``); the only request made is its ``GET``.
    directory, filename
        Where the file goes (default name: the last part of the URL).
    sha256
        Expected SHA-256; ``None`` accepts the file on first use with a warning that prints its hash.
    progress
        Show a byte-progress bar on a terminal.
    warn
        Warn at once when a file is accepted without a known hash (:func:`warn_first_use`); a caller that checks
        the file further (e.g. unpacks it) passes ``False`` and warns once the file is accepted.

    Raises
    ------
    UserInputError
        The server cannot be reached or answers with an error, the transfer breaks (the ``.part`` file is kept for
        the next attempt), or the SHA-256 differs (nothing is kept).
    """
    import pooch
    import requests

    expected = normalise_sha256(sha256)
    name = filename or PurePosixPath(url.split("?")[0]).name
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    target.unlink(missing_ok=True)  # never trust a file from an earlier run: only the .part is resumed
    downloader = ResumableDownload(folder / (name + PART_SUFFIX), progress)
    pooch.get_logger().setLevel(logging.WARNING)
    try:
        pooch.retrieve(url, known_hash=None, fname=name, path=folder, downloader=downloader)
    except requests.exceptions.HTTPError as exc:
        answer = exc.response
        status = f"{answer.status_code} {answer.reason}" if answer is not None else _reason(exc)
        raise UserInputError(f"{url}: the server answered {status}") from None
    except requests.exceptions.RequestException as exc:
        part = downloader.part
        if isinstance(exc, requests.exceptions.ChunkedEncodingError) or (part.is_file() and part.stat().st_size):
            raise UserInputError(_interrupted(url, part)) from None
        raise UserInputError(f"{url}: cannot download ({_reason(exc)})") from None
    assert downloader.sha256 is not None
    try:
        return _accept(target, downloader.sha256, expected, f"{name} from {url}", warn)
    except UserInputError:
        target.unlink(missing_ok=True)
        raise


def _interrupted(url: str, part: Path) -> str:
    size = part.stat().st_size if part.is_file() else 0
    return (f"{url}: download interrupted after {size:,} bytes; {part} is kept and the same command resumes it "
            "(delete it to start over)")


def _reason(exc: BaseException) -> str:
    """What went wrong with a request, on one line."""
    text = " ".join(str(exc).split())
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "timed out", "No route to host", "Network is unreachable"):
        if marker in text:
            return marker.lower()
    return text[-200:]


def _safe_member(name: str) -> PurePosixPath | None:
    """The relative path of a zip member, or ``None`` for one that would land outside the folder."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        return None
    return path


def unpack_zip(archive: str | os.PathLike[str], target: str | os.PathLike[str], what: str | None = None,
               overwrite: bool = False,
               finish: Callable[[Path, dict[str, dict[str, Any]]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Extract a zip archive into ``target`` atomically; return ``{relative path: {sha256, size}}`` of its files.

    The members are extracted into a hidden folder beside ``target`` (same file system), each one hashed while it
    is written (zip checks each member's CRC-32), and the folder is renamed onto ``target`` only at the end: a
    truncated, corrupted or foreign archive leaves nothing behind. ``what`` names the archive in messages;
    ``finish(folder, files)`` runs on the complete unpacked folder before the rename (to check its layout and add
    files); an error it raises leaves nothing behind either.

    Raises
    ------
    UserInputError
        Not a zip archive, a truncated or corrupted one, or a member with an absolute path or ``..``.
    """
    source = what or str(archive)
    files: dict[str, dict[str, Any]] = {}
    try:
        with zipfile.ZipFile(archive) as zf, staged_folder(target, overwrite=overwrite) as tmp:
            for info in zf.infolist():
                rel = _safe_member(info.filename)
                if rel is None:
                    raise UserInputError(f"{source}: member {info.filename!r} would be written outside the model "
                                         "folder (refused)")
                if info.is_dir():
                    (tmp / rel).mkdir(parents=True, exist_ok=True)
                    continue
                files[rel.as_posix()] = _extract(zf, info, tmp / rel)
            if finish is not None:
                finish(tmp, files)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UserInputError(f"{source}: not a complete zip archive ({' '.join(str(exc).split())[:120]})") from None
    return files


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> dict[str, Any]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": info.file_size}
