"""Bad export directories and backend options get DFFErrors that say what to do, never a traceback."""

import shutil

import pytest

from dff.errors import ConfigError, ExportError
from dff.manifest import MANIFEST_NAME, load_manifest
from dff.runtime import open_backend


def test_manifest_that_is_not_text(tiny_export, tmp_path):
    broken = tmp_path / "export"
    shutil.copytree(tiny_export, broken)
    (broken / MANIFEST_NAME).write_bytes(b"\xff\xfe{")
    with pytest.raises(ExportError, match="is corrupt.*run `dff export` again"):
        load_manifest(broken)


def test_backend_option_of_the_wrong_type(tiny_export):
    with pytest.raises(ConfigError, match="backend .onnxruntime.: option threads expects an integer, got .many."):
        open_backend("onnxruntime", model=tiny_export, threads="many")
