"""Library errors name parameters, the command line names flags.

A :class:`~livermets.errors.ParameterError` carries its message as a template naming parameters by their Python
names; every command turns it into one line naming the command's own flags. No error message raised in a library
module spells a flag itself.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import one_error_line, run_cli
from livermets.errors import ParameterError, UserInputError

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "livermets"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
ERRORS = {"UserInputError", "ParameterError"}


def _library_modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "cli.py" and not path.name.endswith("_cli.py") and path.name != "__main__.py":
            yield path


def _raised_messages(path: Path) -> Iterator[tuple[int, str, ast.Call]]:
    """``(line, constant text, call)`` of the first argument of every UserInputError/ParameterError(...) call."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ERRORS:
            if not node.args:
                continue
            text = "".join(part.value for part in ast.walk(node.args[0])
                           if isinstance(part, ast.Constant) and isinstance(part.value, str))
            yield node.lineno, text, node


def test_no_library_error_message_spells_a_flag():
    found = [f"{path.relative_to(PACKAGE.parents[1])}:{line}: {FLAG.findall(text)}"
             for path in _library_modules() for line, text, _ in _raised_messages(path) if FLAG.search(text)]
    assert not found, "library errors name parameters ({name} in a ParameterError), not flags:\n" + "\n".join(found)


def test_every_parameter_named_by_a_library_error_is_an_option_of_some_command():
    from livermets.cli import commands, flag_names

    known = set().union(*(flag_names(c.callback) for c in commands() if c.callback is not None))
    unknown = []
    for path in _library_modules():
        for line, _, call in _raised_messages(path):
            template = call.args[0]
            if getattr(call.func, "id", getattr(call.func, "attr", None)) != "ParameterError":
                continue
            if not isinstance(template, ast.Constant):  # built from option fields: see tests/foundation/test_options.py
                continue
            values = {k.arg for k in call.keywords}
            error = ParameterError(template.value, **{v: "" for v in values if v is not None})
            unknown += [f"{path.name}:{line}: {p}" for p in error.parameters if p not in known]
    assert not unknown, "parameters no command has (rename the command's parameter): " + ", ".join(unknown)


def test_a_parameter_error_renders_names_or_flags_and_never_parses_its_values():
    error = ParameterError("{n_splits} {value}: needs at least 2 patients per class; see {seed}", value="{seed}")
    assert isinstance(error, UserInputError)
    assert error.parameters == ("n_splits", "seed")
    assert str(error) == "n_splits {seed}: needs at least 2 patients per class; see seed"
    assert error.render({"n_splits": "--folds"}) == "--folds {seed}: needs at least 2 patients per class; see seed"


def test_a_parameter_error_raised_in_a_worker_process_keeps_its_template():
    import pickle

    error = ParameterError("{out}: output folder exists (use {overwrite} to replace it)", out="a{b}")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ParameterError and str(copy) == "a{b}: output folder exists (use overwrite to replace it)"
    assert copy.render({"overwrite": "--overwrite"}) == "a{b}: output folder exists (use --overwrite to replace it)"


def test_flag_names_follow_the_declared_flags():
    from livermets.cli import commands, flag_names

    predict = next(c for c in commands() if c.callback is not None and c.callback.__name__ == "predict")
    names = flag_names(predict.callback)
    assert names["blend_mode"] == "--blend"
    assert names["ras"] == "--ras"
    assert names["lesion_max_distance_mm"] == "--lesion-max-distance-mm"


@pytest.mark.parametrize(("args", "line"), [
    (["seg", "predict", "--image", "ct.nii.gz", "--out", "o", "--overlap", "1.5"],
     "error: --overlap 1.5: must be in [0, 1)"),
    (["seg", "predict", "--image", "ct.nii.gz", "--out", "o", "--argmax", "--lesion-threshold", "0.5"],
     "error: --argmax and --lesion-threshold exclude each other"),
])
def test_the_command_line_prints_flags(monkeypatch, capsys, tmp_path, args, line):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    assert one_error_line(run_cli(monkeypatch, *args), capsys) == line
