"""``livermets data``: list, describe and fetch the registered public data sets (docs/data.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

log = logging.getLogger(__name__)

app = typer.Typer(help="Public data sets (the paper's feature table, example CTs, IBSI phantom): list, describe, "
                  "fetch. Every file is checked against its pinned SHA-256; nothing is ever sent anywhere.",
                  no_args_is_help=True)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


@app.command("list")
def list_command() -> None:
    """List the data sets: name, where they are (mirror, home, partial, missing), files, size and licence.

    Example: ``livermets data list``
    """
    from livermets.data import data_home, datasets, mirror_dir, status

    typer.echo(f"{'name':<18}{'where':<14}{'files':>6}{'size':>10}  licence")
    for name, item in datasets().items():
        where, _ = status(name)
        typer.echo(f"{name:<18}{where:<14}{len(item.files):>6}{_size(item.size):>10}  {item.licence_short}")
    mirror = mirror_dir()
    typer.echo(f"data home: {data_home()} (set LIVERMETS_HOME to move it); mirror folder (LIVERMETS_DATA_DIR): "
               f"{mirror if mirror else 'not set'}")


@app.command("info")
def info_command(name: str = typer.Argument(..., help="Data set name (`livermets data list`).")) -> None:
    """Show a data set's card: description, source, licence, citation, and each file's URL, SHA-256 and location.

    Example: ``livermets data info nih_mip_msclc``
    """
    from livermets.data import dataset, locate, status

    item = dataset(name)
    where, folder = status(name)
    typer.echo(f"{name}: {item.description}")
    typer.echo(f"where: {where}" + (f" ({folder})" if folder else ""))
    typer.echo(f"source: {item.source}")
    typer.echo(f"licence: {item.licence}" + (f" ({item.licence_url})" if item.licence_url else ""))
    typer.echo(f"cite: {item.citation}")
    if item.note:
        typer.echo(f"note: {item.note}")
    for spec in item.files:
        found = locate(spec.path)
        download = (f"; downloaded as {spec.url_name} (SHA-256 {spec.download_sha256}, {spec.download_size} bytes), "
                    f"then {spec.then}") if spec.download_sha256 else ""
        typer.echo(f"file: {spec.path} {spec.size} bytes SHA-256 {spec.sha256} from {spec.url}{download}"
                   + (f" [here: {found}]" if found else ""))


@app.command("fetch")
def fetch_command(
    name: str = typer.Argument(..., help="Data set name (`livermets data list`), or 'all'."),
    from_files: list[Path] | None = typer.Option(None, "--from-file", help="Take the files from a file or folder "
                                                "downloaded elsewhere (searched by file name, checked by SHA-256; "
                                                "repeatable); nothing is downloaded."),
) -> None:
    """Download (or take from --from-file), check and keep a data set in the data home.

    Files already in the mirror folder (LIVERMETS_DATA_DIR) or the data home with the registered SHA-256 are used as
    they are. A broken download resumes from its .part file when the command is run again.

    Example: ``livermets data fetch nih_mip_msclc``

    Example: ``livermets data fetch totalsegmentator --from-file /media/usb/reference_files/``
    """
    from livermets.data import dataset, datasets, fetch_dataset
    from livermets.errors import UserInputError

    names = list(datasets()) if name == "all" else [dataset(name).name]
    for current in names:
        try:
            done = fetch_dataset(current, from_files=from_files or ())
        except UserInputError as exc:
            hint = "" if from_files else (f"; offline: download the files elsewhere (`livermets data info {current}`"
                                          f" lists them), then `livermets data fetch {current} --from-file FOLDER`")
            raise UserInputError(f"{current}: {exc}{hint}") from None
        counts = {how: sum(1 for _, _, h in done if h == how) for how in ("download", "file", "mirror", "home")}
        said = ", ".join(f"{n} {how if how != 'home' else 'already here'}" for how, n in counts.items() if n)
        folder = done[0][1].parents[len(Path(done[0][0].path).parts) - 2]
        typer.echo(f"{current}: {len(done)} file(s) checked ({said}) in {folder}")


@app.command("path")
def path_command(
    path: str = typer.Argument(..., help="A registered file or folder, e.g. totalsegmentator/example_ct_dicom."),
) -> None:
    """Print where a registered file or folder is (mirror folder or data home); exit 2 when it is not here.

    Nothing is downloaded: for scripts that use the data (``livermets data fetch NAME`` gets it).

    Example: ``livermets analyze "$(livermets data path totalsegmentator/example_ct_dicom)" --out real_ct``
    """
    from livermets.data import dataset_of, locate
    from livermets.errors import UserInputError

    found = locate(path)
    if found is None:
        raise UserInputError(f"{path}: not here (fetch it with `livermets data fetch {dataset_of(path).name}`)")
    typer.echo(str(found))
