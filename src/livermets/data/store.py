"""Find, fetch and check the registered data files (:mod:`livermets.data.registry`).

A registered file is looked for, in this order, in

1. the local mirror folder ``$LIVERMETS_DATA_DIR`` (laid out as ``<data set>/<file>``; e.g. CI's copy of the data),
   used in place without any download;
2. the data home, :func:`data_home`: ``$LIVERMETS_HOME/data`` when ``LIVERMETS_HOME`` is set, else the platform's
   user data folder of livermets (platformdirs, e.g. ``~/.local/share/livermets`` on Linux).

A file counts as found only when its SHA-256 is the registered one (a file kept gzip-compressed also when its
decompressed content has the SHA-256 of the upstream file); a file with another hash is ignored with a warning.
What is missing is downloaded by :func:`livermets.fetch.fetch` (pooch, resumable ``.part``, SHA-256 checked) from
the registered URL, or from ``$LIVERMETS_DATA_URL/<data set>/<file>`` (a web mirror of the same layout), or taken
from files given with ``from_files`` (``livermets data fetch NAME --from-file``), and written into the data home
under a temporary name then renamed: a file there is complete or absent.

Examples
--------
>>> locate("nih_mip_msclc/Final_ResampledClassificationData.csv")  # doctest: +SKIP
PosixPath('/home/me/.local/share/livermets/nih_mip_msclc/Final_ResampledClassificationData.csv')
>>> require(PAPER_FEATURES, "the paper's published feature table")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

from livermets.atomic import atomic_path
from livermets.data.registry import PAPER_FEATURES, DataFile, DataSet, dataset, dataset_of, files_under
from livermets.errors import ParameterError, UserInputError
from livermets.fetch import HOME_ENV, fetch, sha256sum

__all__ = ["DATA_DIR_ENV", "DATA_URL_ENV", "PAPER_FEATURES", "data_home", "fetch_dataset", "locate", "mirror_dir",
           "paper_features", "require", "search_roots", "status"]

DATA_DIR_ENV = "LIVERMETS_DATA_DIR"
DATA_URL_ENV = "LIVERMETS_DATA_URL"
DOWNLOADS = ".downloads"
log = logging.getLogger(__name__)
_checked: dict[tuple[str, int, int], bool] = {}


def data_home() -> Path:
    """``$LIVERMETS_HOME/data``, or the user data folder of livermets (platformdirs)."""
    given = os.environ.get(HOME_ENV)
    if given:
        return Path(given).expanduser() / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir("livermets", appauthor=False))


def mirror_dir() -> Path | None:
    """``$LIVERMETS_DATA_DIR`` (a local folder laid out as ``<data set>/<file>``), or ``None``."""
    given = os.environ.get(DATA_DIR_ENV)
    return Path(given).expanduser() if given else None


def search_roots() -> list[Path]:
    """Where registered files are looked for, in order: the mirror folder (if set), then the data home."""
    mirror = mirror_dir()
    return [mirror, data_home()] if mirror is not None else [data_home()]


def _content_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    except (OSError, EOFError, zlib.error):
        return None


def verified(path: Path, spec: DataFile) -> bool:
    """``path`` is the registered file ``spec`` (its SHA-256; for a gzip-kept file also its decompressed content's).
    The answer is remembered per path, size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return False
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _checked:
        good = sha256sum(path) == spec.sha256 or (spec.then == "gzip" and
                                                    _content_sha256(path) == spec.download_sha256)
        if not good:
            log.warning("%s: SHA-256 differs from the registered one for %s (ignored)", path, spec.path)
        _checked[key] = good
    return _checked[key]


def locate(path: str, roots: Sequence[Path] | None = None) -> Path | None:
    """The checked local copy of a registered file or folder (``<data set>/<file>``), or ``None``.

    A folder (e.g. ``totalsegmentator/example_ct_dicom``) is found only where every registered file in it is.

    Raises
    ------
    UserInputError
        ``path`` is not a registered file or folder.
    """
    wanted = files_under(path)
    if not wanted:
        dataset_of(path)  # raises with the names of the data sets
    for root in search_roots() if roots is None else roots:
        if all(verified(root / spec.path, spec) for spec in wanted):
            return root / path
    return None


def status(name: str) -> tuple[str, Path | None]:
    """Where data set ``name`` is: (``mirror``/``home``, its folder), (``partial k/n``, None) or (``missing``,
    None)."""
    item = dataset(name)
    for label, root in zip(("mirror", "home") if mirror_dir() else ("home",), search_roots(), strict=True):
        if locate(name, [root]) is not None:
            return label, root / name
    home = data_home()
    present = sum(verified(home / spec.path, spec) for spec in item.files)
    return (f"partial {present}/{len(item.files)}" if present else "missing"), None


def _download_source(spec: DataFile) -> tuple[str, str]:
    """The URL a file is downloaded from and the SHA-256 of what arrives (a web mirror serves the kept form)."""
    mirror = os.environ.get(DATA_URL_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.path}", spec.sha256
    return spec.url, spec.download_sha256 or spec.sha256


def _keep(spec: DataFile, source: Path, digest: str, move: bool) -> Path:
    """Write ``source`` (SHA-256 ``digest``, checked) into the data home as ``spec`` (gzip it when registered so)."""
    target = data_home() / spec.path
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        if digest == spec.sha256:
            if move:
                os.replace(source, tmp)
            else:
                shutil.copyfile(source, tmp)
        else:  # the upstream form of a file kept compressed
            tmp.write_bytes(gzip.compress(source.read_bytes(), compresslevel=9, mtime=0))
    if move:
        source.unlink(missing_ok=True)
    return target


def _download(spec: DataFile, progress: bool) -> Path:
    url, expected = _download_source(spec)
    got = fetch(url, data_home() / DOWNLOADS / Path(spec.path).parent, spec.name, expected, progress)
    return _keep(spec, got.path, got.sha256, move=True)


def _match_files(given: Sequence[str | os.PathLike[str]], item: DataSet) -> dict[str, tuple[Path, str]]:
    """``{registered path: (file, its SHA-256)}`` for the files given with ``--from-file`` (files or folders,
    searched recursively), matched by name (as kept or as in the URL) and checked by SHA-256."""
    by_name: dict[str, list[DataFile]] = {}
    for spec in item.files:
        for name in {spec.name, spec.url_name}:
            by_name.setdefault(name, []).append(spec)
    candidates: list[Path] = []
    for raw in given:
        path = Path(raw)
        if path.is_dir():
            candidates += sorted(p for p in path.rglob("*") if p.is_file() and p.name in by_name)
        elif path.is_file():
            candidates.append(path)
        else:
            raise UserInputError(f"{path}: no such file or folder")
    found: dict[str, tuple[Path, str]] = {}
    for path in candidates:
        specs = by_name.get(path.name, [])
        digest = sha256sum(path)
        for spec in specs:
            if digest in (spec.sha256, spec.download_sha256):
                found.setdefault(spec.path, (path, digest))
        if not specs and len(given) == 1 and path == Path(given[0]):
            raise UserInputError(f"{path}: not a file of data set {item.name} (matched by file name)")
    return found


def fetch_dataset(name: str, from_files: Sequence[str | os.PathLike[str]] = (), progress: bool = True,
                  what: str | None = None) -> list[tuple[DataFile, Path, str]]:
    """Make every file of data set ``name`` available; return ``(file, local path, how)`` per file, ``how`` one of
    ``mirror``, ``home`` (already there), ``download`` or ``file`` (from ``from_files``).

    Before downloading, one line says what is fetched (``what``, default the data set's name), from where, its
    licence and where it is kept.

    Raises
    ------
    UserInputError
        Unknown name; ``from_files`` lacks a file (or holds one with another SHA-256); a download fails (a broken one
        keeps its ``.part`` and the same call resumes it) or has another SHA-256 (nothing kept).
    """
    item = dataset(name)
    local = _match_files(from_files, item) if from_files else {}
    todo = [spec for spec in item.files if locate(spec.path) is None]
    missing = [spec.path for spec in todo if from_files and spec.path not in local]
    if missing:
        raise ParameterError("{from_files}: no file with the registered name and SHA-256 for {missing} (see "
                             "`livermets data info {name}`)", missing=", ".join(missing), name=name)
    if todo and not from_files:
        _announce(item, todo, what)
    done = []
    mirror = mirror_dir()
    for spec in item.files:
        if spec not in todo:
            found = locate(spec.path)
            assert found is not None
            done.append((spec, found, "mirror" if mirror is not None and found.is_relative_to(mirror) else "home"))
        elif from_files:
            path, digest = local[spec.path]
            done.append((spec, _keep(spec, path, digest, move=False), "file"))
        else:
            done.append((spec, _download(spec, progress), "download"))
    return done


def _announce(item: DataSet, todo: list[DataFile], what: str | None) -> None:
    """The line before a download: what, from where, licence, where it is kept."""
    origin = os.environ.get(DATA_URL_ENV) or todo[0].url.rsplit("/", 1)[0] + "/"
    size = sum(spec.download_size or spec.size for spec in todo)
    log.info("fetching %s (%s: %d file(s), %s) from %s; licence: %s; kept in %s", what or f"data set {item.name}",
             item.name, len(todo), _size(size), origin, item.licence, data_home() / item.name)


def require(path: str, what: str, progress: bool = True) -> Path:
    """The local copy of a registered file or folder, fetched (its whole data set) on first use.

    Before a download, one line says what is fetched, from where, its licence and where it is kept.

    Raises
    ------
    UserInputError
        Not found locally and the download fails: one line naming the file, the reason and the offline way.
    """
    found = locate(path)
    if found is not None:
        return found
    item = dataset_of(path)
    try:
        fetch_dataset(item.name, progress=progress, what=what)
    except UserInputError as exc:
        where = f"{DATA_DIR_ENV} ({mirror_dir()}) nor " if mirror_dir() else ""
        raise UserInputError(f"{what} ({path}) is not in {where}{data_home()}, and fetching it failed: {exc}. "
                             f"Offline: run `livermets data fetch {item.name}` where there is internet, or set "
                             f"{DATA_DIR_ENV} to a folder holding {', '.join(f.path for f in item.files[:1])}"
                             f"{' and the other files of ' + item.name if len(item.files) > 1 else ''}") from None
    found = locate(path)
    assert found is not None
    return found


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def paper_features(progress: bool = True) -> Path:
    """The paper's published feature table (``Final_ResampledClassificationData.csv``), fetched on first use."""
    return require(PAPER_FEATURES, "the paper's published feature table", progress)
