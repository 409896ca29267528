"""The ``livermets`` command line: one sub-command group per pipeline stage.

Every stage is a typed Python API first; the groups below are thin wrappers over it. A
:class:`~livermets.errors.UserInputError` raised anywhere, and a command-line usage error (an unknown option, a value
of the wrong type), becomes one line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer._click import exceptions as click_errors  # Typer's own copy of click: what its parser raises

from livermets import __version__
from livermets.atomic import outputs
from livermets.errors import EXIT_USER_ERROR, ParameterError, UserInputError
from livermets.logs import configure, console, flush_repeated

app = typer.Typer(
    name="livermets",
    help="Liver metastases on CT: segmentation, lesion metrics, radiomics and NE-phenotype prediction (SCLC).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: option names whole, help wrapped under them at 80 columns
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"livermets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v: debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    configure(-1 if quiet else verbose)


def _register_stages() -> None:
    # Imported here so that `livermets --help` lists exactly the stages that exist.
    from livermets.cohort.cli import app as cohort_app
    from livermets.imaging.cli import app as imaging_app
    from livermets.synth.cli import register as register_synth

    register_synth(app)
    app.add_typer(cohort_app, name="cohort")
    app.add_typer(imaging_app, name="imaging")

    from livermets.lesions.cli import app as lesions_app
    from livermets.segmentation.cli import app as seg_app
    from livermets.segmentation.cli import register as register_segmentation

    app.add_typer(lesions_app, name="lesions")
    register_segmentation(seg_app)
    app.add_typer(seg_app, name="seg")

    from livermets.segmentation.models_cli import app as models_app

    app.add_typer(models_app, name="models")

    from livermets.data.cli import app as data_app

    app.add_typer(data_app, name="data")

    from livermets.phenotype.cli import app as phenotype_app
    from livermets.reproduce.cli import app as reproduce_app
    from livermets.stats.cli import app as stats_app

    app.add_typer(phenotype_app, name="phenotype")
    app.add_typer(stats_app, name="stats")
    for command in reproduce_app.registered_commands:  # a failed reproduction leaves no output folder
        if command.callback is not None:
            command.callback = outputs("out")(command.callback)
    app.add_typer(reproduce_app, name="reproduce")

    from livermets.radiomics.cli import app as radiomics_app

    app.add_typer(radiomics_app, name="radiomics")

    from livermets.analyze.cli import register as register_analyze

    register_analyze(app)


def flag_names(callback: Callable[..., Any]) -> dict[str, str]:
    """``{python parameter: flag}`` of a command function: ``n_boot`` -> ``--n-boot``, an argument -> ``CT``."""
    names = {}
    for name, parameter in inspect.signature(callback).parameters.items():
        info = parameter.default
        if isinstance(info, typer.models.ArgumentInfo):
            names[name] = (info.metavar or name).upper()
        elif isinstance(info, typer.models.OptionInfo):
            declared = [d.split("/")[0] for d in (info.param_decls or ()) if d.startswith("--")]
            names[name] = declared[0] if declared else "--" + name.replace("_", "-")
    return names


def _flags_in_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that a :class:`ParameterError` names its option flags instead of Python parameters."""
    names = flag_names(callback)

    @functools.wraps(callback)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except ParameterError as exc:
            raise UserInputError(exc.render(names)) from None

    return command


def commands(typer_app: typer.Typer = app) -> Iterator[typer.models.CommandInfo]:
    """Every command registered in ``typer_app`` and its sub-groups."""
    yield from typer_app.registered_commands
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            yield from commands(group.typer_instance)


_register_stages()
for _command in commands():
    if _command.callback is not None:
        _command.callback = _flags_in_errors(_command.callback)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
def _has_checkpoint(out: Path) -> bool:
    """A ``seg train`` folder holds something to resume (before the first checkpoint, the same command restarts)."""
    from livermets.segmentation.model_files import CHECKPOINT_DIR, STATE_FILE

    return (out / CHECKPOINT_DIR / STATE_FILE).is_file() or (out / "nnunet_run.json").is_file()


RESUMING: dict[tuple[str, ...], tuple[str | None, tuple[str, ...], Callable[[Path], bool] | None]] = {
    # command: (the flag its rerun needs to resume, flags that would make the rerun start over, and when the flag
    # is needed, judged from the --out folder: None = always)
    ("synth",): ("--resume", (), None),
    ("seg", "train"): ("--resume", (), _has_checkpoint),
    ("seg", "predict"): (None, ("--overwrite",), None),
    ("seg", "evaluate"): (None, (), None),
    ("radiomics", "extract"): (None, (), None),
    ("run",): (None, (), None),
}
"""The resumable commands (docs/reliability.md) and how the command that resumes them differs from the first."""


def command_path(args: list[str], typer_app: typer.Typer = app) -> tuple[str, ...]:
    """The command that ``livermets ARGS`` runs: ``("synth",)``, ``("seg", "predict")``; ``()`` when none.

    >>> command_path(["-q", "seg", "predict", "--out", "p"])
    ('seg', 'predict')
    """
    words = [a for a in args if not a.startswith("-")][:2]  # the root options (-v, -q) take no value
    groups = {group.name for group in typer_app.registered_groups}
    if not words or words[0] not in groups:
        return tuple(words[:1])
    return tuple(words)


def resuming_command(args: list[str]) -> str | None:
    """The exact command line that resumes an interrupted ``livermets ARGS``, or None for a command that does not
    resume: the same arguments, with ``--resume`` where the command needs it (``seg train`` once it has written a
    checkpoint) and without ``--overwrite`` where that would start over.

    >>> resuming_command(["synth", "--out", "my cohort", "--patients", "2"])
    "livermets synth --out 'my cohort' --patients 2 --resume"
    >>> resuming_command(["seg", "predict", "--manifest", "m.csv", "--out", "p", "--overwrite"])
    'livermets seg predict --manifest m.csv --out p'
    """
    path = command_path(args)
    if path not in RESUMING:
        return None
    flag, dropped, needed = RESUMING[path]
    kept = [a for a in args if a not in dropped]
    out = _option_value(args, "--out")
    if flag is not None and flag not in kept and (needed is None or (out is not None and needed(Path(out)))):
        kept.append(flag)
    return shlex.join(["livermets", *kept])


def _option_value(args: list[str], option: str) -> str | None:
    """The value given to ``option`` (``--out X`` or ``--out=X``; the last one counts), or None."""
    value = None
    for k, arg in enumerate(args):
        if arg == option and k + 1 < len(args):
            value = args[k + 1]
        elif arg.startswith(option + "="):
            value = arg[len(option) + 1:]
    return value


def _interrupted(args: list[str]) -> str:
    """The line printed after Ctrl-C."""
    command = resuming_command(args)
    if command is None:
        return "interrupted: no output is half-written"
    return f"interrupted: no output is half-written; to continue where it stopped, run: {command}"


def _error(message: str) -> None:
    """Print ``message`` as one ``error:`` line on stderr (line breaks inside it become spaces), after the repeated
    warnings held back so far."""
    flush_repeated()
    console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(standalone_mode=False, prog_name="livermets")
    except UserInputError as exc:
        _error(str(exc))
        sys.exit(EXIT_USER_ERROR)
    except click_errors.NoArgsIsHelpError as exc:  # the help text was printed when the error was raised
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        _error(f"{where}{exc.format_message()} (see --help)")
        sys.exit(EXIT_USER_ERROR)
    except typer.TyperException as exc:
        _error(exc.format_message())
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except OSError as exc:  # an output folder without write permission, a full disk: the environment, not a bug
        if exc.filename is None:
            raise
        _error(f"{exc.filename}: {exc.strerror or exc}")
        sys.exit(EXIT_USER_ERROR)
    flush_repeated()  # each repeated warning once, with its count
    if code == EXIT_INTERRUPTED:  # Typer turns a KeyboardInterrupt inside a command into Exit(130)
        typer.echo(_interrupted(sys.argv[1:]), err=True)
    sys.exit(code if isinstance(code, int) else 0)  # an int is typer.Exit(code) raised inside a command
