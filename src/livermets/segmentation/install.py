"""Install, check and remove registry models in the livermets home (``$LIVERMETS_HOME/models/<name>/``).

An installed model folder holds its archive unpacked exactly as TotalSegmentator unpacks it
(``<DatasetXXX_...>/<trainer>__<plans>__<configuration>/{plans.json, dataset.json, fold_0/checkpoint_final.pth}``)
and ``install.json``: its provenance (name, version, URL, SHA-256 of the archive and whether it was published,
pinned with ``--sha256`` or accepted on first use, the SHA-256 and size of every unpacked file, the date, licence and
citation). A model is used only after its files were hashed again and match ``install.json``
(:func:`verify_model`, run before every prediction), so a file changed after installation is refused.

``LIVERMETS_MODELS_URL`` points downloads to a mirror (e.g. a hospital's internal web server): every archive is
then fetched from ``<mirror>/<file name>``, with the same hash checks.

``models/trust.json`` keeps the SHA-256 accepted on first use of every archive URL: it outlives ``remove``, so a
later download or ``--from-file`` of the same archive must have the same hash (trust on first use).

Examples
--------
>>> install_model("ts-pair")  # doctest: +SKIP
>>> install_model("ts-liver-lesions", from_files=["Dataset591_ct_liver_lesions_842subj.zip"])  # doctest: +SKIP
>>> verify_model("ts-liver-lesions")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livermets.atomic import remove_partials, write_json
from livermets.errors import ParameterError, UserInputError
from livermets.fetch import Fetched, check_file, fetch, home, normalise_sha256, unpack_zip, warn_first_use
from livermets.segmentation.model_files import DEFAULT_MODEL_DIR
from livermets.segmentation.registry import FileSpec, ModelEntry, entries, entry, install_order

MIRROR_ENV = "LIVERMETS_MODELS_URL"
INSTALL_FILE = "install.json"
TRUST_FILE = "trust.json"
log = logging.getLogger(__name__)


def models_dir() -> Path:
    """``<home>/models``: one folder per installed model."""
    return home() / "models"


def model_dir(name: str) -> Path:
    """Where model ``name`` is (or would be) installed."""
    return models_dir() / name


def is_installed(name: str) -> bool:
    """Model ``name`` is ready to use: the shipped model always; a pair when every entry it needs is installed."""
    item = entry(name)
    if item.engine == "monai":
        return True
    return all((model_dir(n) / INSTALL_FILE).is_file() for n in install_order(name))


@dataclass(frozen=True)
class Installed:
    """What one installation did: the model, its folder, and the archive's hash and trust."""

    name: str
    folder: Path
    sha256: str | None
    trust: str
    already: bool = False


def install_model(name: str, from_files: Sequence[str | os.PathLike[str]] = (), sha256: str | None = None,
                  progress: bool = True) -> list[Installed]:
    """Install ``name`` and the entries it needs, downloading their archives or taking them from ``from_files``.

    Parameters
    ----------
    name
        A registry entry (a pair installs its components and their requirements).
    from_files
        Archives downloaded elsewhere, or folders holding them, matched to the entries' files by file name; when
        given, nothing is downloaded.
    sha256
        Pin the archive's SHA-256 (only when exactly one archive is installed).
    progress
        Show a download progress bar on a terminal.

    Raises
    ------
    UserInputError
        Unknown name; a wrong, truncated or foreign archive (nothing is left behind); a download that fails.
    """
    item = entry(name)
    todo = [n for n in install_order(name) if not (model_dir(n) / INSTALL_FILE).is_file()]
    done = [Installed(n, model_dir(n), None, "", already=True) for n in install_order(name) if n not in todo]
    pinned = normalise_sha256(sha256, "--sha256")
    if pinned is not None and len(todo) != 1:
        raise ParameterError("{sha256} pins one archive; {name} needs {count} (install them one by one)",
                             name=name, count=len(todo))
    local = _match_files(from_files, todo) if from_files else {}
    models_dir().mkdir(parents=True, exist_ok=True)
    remove_partials(models_dir())  # folders half-unpacked by a killed install
    for needed in todo:
        spec = entry(needed).files[0]
        done.append(_install_one(entry(needed), spec, local.get(needed), pinned, progress))
    if item.engine == "monai":
        log.info("%s is part of the package: nothing to install", name)
    return done


def _match_files(given: Sequence[str | os.PathLike[str]], todo: list[str]) -> dict[str, Path]:
    """``{entry name: archive}`` for every entry to install, from files and folders given with ``--from-file``."""
    wanted = {entry(n).files[0].filename: n for n in todo}
    found: dict[str, Path] = {}
    for raw in given:
        path = Path(raw)
        if path.is_dir():
            for candidate in sorted(path.iterdir()):
                if candidate.name in wanted:
                    found[wanted[candidate.name]] = candidate
        elif not path.is_file():
            raise UserInputError(f"{path}: no such file or folder")
        elif path.name in wanted:
            found[wanted[path.name]] = path
        else:
            expected = ", ".join(sorted(wanted)) or "nothing (every file is installed)"
            raise UserInputError(f"{path}: not a file of this model (expected by file name: {expected})")
    missing = [f"{n} ({entry(n).files[0].filename})" for n in todo if n not in found]
    if missing:
        raise ParameterError("{from_files}: no archive for {missing}; give it too, or install online",
                             missing=", ".join(missing))
    return found


def _trusted() -> dict[str, str]:
    path = models_dir() / TRUST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _install_one(item: ModelEntry, spec: FileSpec, local: Path | None, pinned: str | None,
                 progress: bool) -> Installed:
    recorded = _trusted().get(spec.url)
    expected = pinned or spec.sha256 or recorded
    if local is not None:
        got = check_file(local, expected, warn=False)
    else:
        url = download_url(spec)
        log.info("%s: downloading %s", item.name, url)
        got = fetch(url, models_dir() / ".downloads", spec.filename, expected, progress, warn=False)
    trust = _trust(got, pinned, spec, recorded)
    try:
        unpack_zip(got.path, model_dir(item.name), what=str(local or spec.filename),
                   finish=lambda folder, files: _finish(folder, files, item, spec, got, trust, local))
    finally:
        if local is None:
            got.path.unlink(missing_ok=True)
    if recorded is None and trust == "first-use":
        warn_first_use(str(local or spec.url), got.sha256)
        write_json(models_dir() / TRUST_FILE, {**_trusted(), spec.url: got.sha256})
    return Installed(item.name, model_dir(item.name), got.sha256, trust)


def download_url(spec: FileSpec) -> str:
    """Where ``spec`` is downloaded from: its URL, or ``$LIVERMETS_MODELS_URL/<file name>`` (a mirror)."""
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{spec.filename}" if mirror else spec.url


def _trust(got: Fetched, pinned: str | None, spec: FileSpec, recorded: str | None) -> str:
    """``pinned`` (--sha256), ``published`` (the registry's hash) or ``first-use`` (accepted now, or checked against
    the hash accepted at the first use)."""
    if got.trust == "first-use" or (pinned is None and spec.sha256 is None):
        return "first-use"
    return "pinned" if pinned is not None else "published"


def _finish(folder: Path, files: dict[str, dict[str, Any]], item: ModelEntry, spec: FileSpec, got: Fetched,
            trust: str, local: Path | None) -> None:
    """Check the unpacked layout, then write ``install.json`` (before the folder gets its final name)."""
    source = str(local) if local is not None else spec.filename
    for required in _required_files(item):
        if required not in files:
            raise UserInputError(f"{source}: not the weights of {item.name} (it has no {required})")
    write_json(folder / INSTALL_FILE, {
        "name": item.name, "version": item.version, "engine": item.engine, "url": spec.url,
        "filename": spec.filename, "source": "file" if local is not None else "download",
        "sha256": got.sha256, "trust": trust, "files": files,
        "installed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "licence": item.licence, "citation": item.citation,
    })


def _required_files(item: ModelEntry) -> list[str]:
    """The nnU-Net result files an entry's archive must hold (plans, dataset and each fold's checkpoint)."""
    block = item.nnunet
    if not block:
        return []
    base = f"{block['dataset']}/{block['trainer']}__{block['plans']}__{block['configuration']}"
    folds = [f"{base}/fold_{fold}/checkpoint_final.pth" for fold in block["folds"]]
    return [f"{base}/plans.json", f"{base}/dataset.json", *folds]


def result_folder(name: str) -> Path:
    """The nnU-Net result folder of an installed nnU-Net entry (``<dataset>/<trainer>__<plans>__<configuration>``)."""
    block = entry(name).nnunet
    if not block:
        raise ParameterError("{name} is not an nnU-Net model", name=name)
    return model_dir(name) / block["dataset"] / f"{block['trainer']}__{block['plans']}__{block['configuration']}"


def install_record(name: str) -> dict[str, Any]:
    """The ``install.json`` of an installed entry.

    Raises
    ------
    UserInputError
        The entry is not installed.
    """
    path = model_dir(name) / INSTALL_FILE
    if not path.is_file():
        raise UserInputError(f"model {name} is not installed (livermets models install {name})")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError:
        raise UserInputError(f"{path}: unreadable install record; reinstall the model (livermets models remove "
                             f"{name}, then install)") from None


def verify_model(name: str) -> list[str]:
    """Hash again every installed file of ``name`` (and of the entries it needs); return the entries checked.

    Raises
    ------
    UserInputError
        A model is not installed, or one of its files is missing or differs from ``install.json``.
    """
    from livermets.fetch import sha256sum

    checked = []
    for needed in install_order(name):
        record = install_record(needed)
        for rel, meta in record["files"].items():
            path = model_dir(needed) / rel
            if not path.is_file():
                raise UserInputError(f"{path}: missing from installed model {needed} (reinstall it)")
            if sha256sum(path) != meta["sha256"]:
                raise UserInputError(f"{path}: SHA-256 differs from the one recorded at installation (the file "
                                     f"was changed; reinstall {needed})")
        checked.append(needed)
    return checked


def remove_model(name: str) -> list[Path]:
    """Delete the installed folder of ``name`` (a pair: nothing of its own; its components stay). Returns what
    was deleted. The first-use hashes in ``trust.json`` are kept.

    Raises
    ------
    UserInputError
        The shipped model (part of the package), or a pair (remove its components by name).
    """
    item = entry(name)
    if item.engine == "monai":
        raise UserInputError(f"{name} is part of the package and cannot be removed")
    if item.engine == "pair":
        raise UserInputError(f"{name} has no files of its own: remove {' and '.join(install_order(name))} by name")
    folder = model_dir(name)
    if not folder.exists():
        raise UserInputError(f"model {name} is not installed")
    shutil.rmtree(folder)
    return [folder]


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def list_models() -> list[dict[str, Any]]:
    """One row per registry entry: name, installed, version, size (bytes on disk, ``None`` when not installed)
    and licence."""
    rows = []
    for name, item in entries().items():
        installed = is_installed(name)
        if item.engine == "monai":
            size: int | None = folder_size(DEFAULT_MODEL_DIR)
        else:
            size = sum(folder_size(model_dir(n)) for n in install_order(name)) if installed else None
        rows.append({"name": name, "installed": installed, "version": item.version, "size": size,
                     "licence": item.licence, "engine": item.engine})
    return rows


def model_info(name: str) -> dict[str, Any]:
    """The registry entry of ``name`` with its installation: ``installed``, ``folder`` and each installed entry's
    ``install.json`` (without the per-file list)."""
    item = entry(name)
    info = item.to_dict()
    info["installed"] = is_installed(name)
    info["folder"] = str(model_dir(name)) if item.engine != "monai" else None
    info["installations"] = {n: {k: v for k, v in install_record(n).items() if k != "files"}
                             for n in install_order(name) if (model_dir(n) / INSTALL_FILE).is_file()}
    return info
