"""Backend option values are checked against each constructor's annotations before it runs (issue 11 item 9, issue 17 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import small_clip

from dff.cli import main
from dff.errors import ConfigError
from dff.runtime import open_backend
from dff.runtime.backends._options import OptionError, coerce_option


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("threads=abc", "option threads expects an integer, got 'abc'"),
        ("provider=gpu", "option provider expects one of 'cpu', 'cuda', 'tensorrt', got 'gpu'"),
        ("spin_threads=maybe", "option spin_threads expects true or false, got 'maybe'"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_the_option(tiny_export: Path, tmp_path: Path, capsys, option, message):
    assert main(["run", str(tiny_export), str(small_clip(tmp_path / "clip.avi", 2)), "-O", option, "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and "pybind" not in error


def test_strings_are_converted_where_the_type_allows(tiny_export: Path) -> None:
    with open_backend("onnxruntime", model=tiny_export, threads="1", spin_threads="false") as backend:
        assert backend.sizes is not None
    with pytest.raises(ConfigError, match="option threads expects an integer, got True"):
        open_backend("onnxruntime", model=tiny_export, threads=True)


def test_union_keeps_an_exact_type_and_none() -> None:
    assert coerce_option("x", int | str, "4") == "4"
    assert coerce_option("x", int | None, None) is None
    assert coerce_option("x", int | None, "7") == 7
    with pytest.raises(OptionError, match="expects an integer, got 2.5"):
        coerce_option("x", int | None, 2.5)
