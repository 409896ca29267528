"""``livermets models``: list, install, info, verify and remove the models of the registry (docs/models.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Install and check segmentation models: TotalSegmentator's liver and liver-lesion models "
                  "(ts-pair), and the model shipped with livermets. Nothing is ever sent anywhere.",
                  no_args_is_help=True)


def _size(n: int | None) -> str:
    """``12.3 MB`` (binary units)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@app.command("list")
def list_command() -> None:
    """List the registry's models: name, installed or not, version, size on disk and licence.

    Example: ``livermets models list``
    """
    from livermets.fetch import home
    from livermets.segmentation.default_model import default_model_name
    from livermets.segmentation.install import list_models

    rows = list_models()
    default = default_model_name()
    typer.echo(f"{'name':<18}{'installed':<11}{'version':<32}{'size':>10}  licence")
    for row in rows:
        mark = " (default)" if row["name"] == default else ""
        typer.echo(f"{row['name']:<18}{'yes' if row['installed'] else 'no':<11}{row['version']:<32}"
                   f"{_size(row['size']):>10}  {row['licence']}{mark}")
    typer.echo(f"models home: {home() / 'models'} (set LIVERMETS_HOME to move it)")


@app.command("install")
def install_command(
    name: str = typer.Argument(..., help="Registry name (ts-pair, ts-pair-fast, ts-liver, ts-liver-fast, "
                               "ts-liver-lesions)."),
    from_files: list[Path] | None = typer.Option(None, "--from-file", help="Install from an archive downloaded "
                                                "elsewhere, or a folder of archives (matched by file name; "
                                                "repeatable); nothing is downloaded."),
    sha256: str | None = typer.Option(None, "--sha256", help="Pin the archive's SHA-256 (one archive only)."),
) -> None:
    """Download (or take from --from-file), check and unpack a model and the models it needs.

    TotalSegmentator publishes no SHA-256 for its weights: the first download is accepted with a warning that
    prints its hash, which is recorded and checked on every later use. A broken download resumes from its .part
    file when the command is run again.

    Example: ``livermets models install ts-pair``

    Example: ``livermets models install ts-pair --from-file /media/usb/weights/``
    """
    from livermets.segmentation.install import install_model
    from livermets.segmentation.registry import entry

    item = entry(name)
    done = install_model(name, from_files=from_files or (), sha256=sha256)
    for result in done:
        state = "already installed" if result.already else f"installed (SHA-256 {result.sha256}, {result.trust})"
        typer.echo(f"{result.name}: {state} in {result.folder}")
    typer.echo(f"{name} {item.version}: licence {item.licence}\ncite: {item.citation}")


@app.command("info")
def info_command(name: str = typer.Argument(..., help="Registry name.")) -> None:
    """Show a model's card: description, version, files, licence, citation, classes, preprocessing, installation.

    Example: ``livermets models info ts-liver-lesions``
    """
    from livermets.segmentation.install import model_info

    info = model_info(name)
    typer.echo(f"{name} {info['version']} ({info['engine']}): {info['description']}")
    typer.echo(f"installed: {'yes' if info['installed'] else 'no'}" + (f" in {info['folder']}" if info['folder']
                                                                        and info['installed'] else ""))
    typer.echo(f"licence: {info['licence']}" + (f" ({info['licence_url']})" if info['licence_url'] else ""))
    typer.echo(f"cite: {info['citation']}")
    if info["training_data"]:
        typer.echo(f"training data: {info['training_data']}")
    typer.echo(f"classes: {', '.join(info['classes'])} (label map {info['label_map']})")
    for key in ("components", "requires", "nnunet"):
        if info.get(key):
            typer.echo(f"{key}: {json.dumps(info[key])}")
    for spec in info["files"]:
        typer.echo(f"file: {spec['url']} (SHA-256 {spec['sha256'] or 'not published'})")
    if info.get("hash_note"):
        typer.echo(f"hashes: {info['hash_note']}")
    for component, record in info["installations"].items():
        typer.echo(f"installed {component}: {record['installed']} from {record['source']} {record['filename']}, "
                   f"SHA-256 {record['sha256']} ({record['trust']})")


@app.command("verify")
def verify_command(name: str = typer.Argument(..., help="Registry name.")) -> None:
    """Hash every installed file again and compare with the hashes recorded at installation.

    Example: ``livermets models verify ts-pair``
    """
    from livermets.segmentation.install import verify_model

    checked = verify_model(name)
    what = ", ".join(checked) or "nothing to check"
    typer.echo(f"{name}: every installed file matches its recorded SHA-256 ({what})")


@app.command("remove")
def remove_command(name: str = typer.Argument(..., help="Registry name of an installed model.")) -> None:
    """Delete an installed model (the hashes accepted on first use are kept and checked again on reinstall).

    Example: ``livermets models remove ts-liver``
    """
    from livermets.segmentation.install import remove_model

    for folder in remove_model(name):
        typer.echo(f"removed {folder}")
