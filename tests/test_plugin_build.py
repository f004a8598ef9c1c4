"""plugins/CMakeLists.txt finds TensorRT as users have it: real header and library files laid out as a pip wheel, a tar
install and a deb install leave them, configured by real CMake (configure only: no CUDA compiler is needed).

The headers here carry only the version lines CMake reads, and libnvinfer is a real shared library with TensorRT's
soname built on the spot: what is tested is where CMake looks and what it picks, not TensorRT itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

if shutil.which("cmake") is None or shutil.which("cc") is None:
    pytest.fail("cmake and a C compiler are needed (make test builds plugins/ with them)", pytrace=False)


def headers(root: Path, major: int, minor: int, *, enterprise: bool = False) -> Path:
    """An include/ folder with NvInferRuntime.h and NvInferVersion.h in the style of TensorRT ``major.minor``."""
    include = root / "include"
    include.mkdir(parents=True)
    (include / "NvInferRuntime.h").write_text("#pragma once\n")
    if enterprise:  # 10.16 and 11.x spell the version through TRT_*_ENTERPRISE
        lines = [f"#define TRT_MAJOR_ENTERPRISE {major}", f"#define TRT_MINOR_ENTERPRISE {minor}",
                 "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE", "#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE"]
    else:
        lines = [f"#define NV_TENSORRT_MAJOR {major}", f"#define NV_TENSORRT_MINOR {minor}"]
    (include / "NvInferVersion.h").write_text("\n".join(["#pragma once", *lines]) + "\n")
    return include


def libnvinfer(directory: Path, major: int, *, unversioned_link: bool = False) -> Path:
    """A real shared library named and sonamed as TensorRT's libnvinfer.so.``major``."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "nvinfer.c"
    source.write_text("void* getPluginRegistry(void) { return 0; }\n")
    library = directory / f"libnvinfer.so.{major}"
    subprocess.run(
        ["cc", "-shared", "-fPIC", f"-Wl,-soname,libnvinfer.so.{major}", "-o", str(library), str(source)], check=True
    )
    source.unlink()
    if unversioned_link:
        (directory / "libnvinfer.so").symlink_to(library.name)
    return library


def configure(
    tmp_path: Path, *args: str, pythonpath: Path | None = None, environment: dict[str, str] | None = None
) -> list[str]:
    """The `dff:` lines of configuring plugins/ with ``args`` (the CUDA part off: it needs no TensorRT)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TensorRT_ROOT", "CPATH", "CPLUS_INCLUDE_PATH")}
    env["PYTHONPATH"] = str(pythonpath) if pythonpath else ""
    env.update(environment or {})
    result = subprocess.run(
        ["cmake", "-S", str(REPO / "plugins"), "-B", str(tmp_path / "build"), "-DDFF_WITH_CUDA=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}", *args],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.removeprefix("-- ") for line in result.stdout.splitlines() if line.startswith("-- dff:")]


def test_pip_wheel_libraries_with_headers_from_the_repository(tmp_path: Path) -> None:
    # pip: tensorrt_libs/ holds only the versioned library; the headers come from NVIDIA/TensorRT's include/.
    include = headers(tmp_path / "TensorRT-10.8", 10, 8)
    site = tmp_path / "site-packages"
    (site / "tensorrt_libs").mkdir(parents=True)
    (site / "tensorrt_libs" / "__init__.py").write_text("")
    library = libnvinfer(site / "tensorrt_libs", 10)
    lines = configure(tmp_path, f"-DTensorRT_INCLUDE_DIR={include}", pythonpath=site)
    assert f"dff: TensorRT 10.8 headers in {include}" in lines
    assert f"dff: TensorRT library {library}" in lines


def test_tar_install_under_tensorrt_root(tmp_path: Path) -> None:
    root = tmp_path / "TensorRT-11.1.0.106"
    headers(root, 11, 1, enterprise=True)
    library = libnvinfer(root / "lib", 11, unversioned_link=True)
    lines = configure(tmp_path, f"-DTensorRT_ROOT={root}")
    assert f"dff: TensorRT 11.1 headers in {root / 'include'}" in lines
    assert any(re.fullmatch(rf"dff: TensorRT library {re.escape(str(library.parent))}/libnvinfer\.so(\.11)?", line)
               for line in lines), lines


def test_headers_on_the_include_path(tmp_path: Path) -> None:
    include = headers(tmp_path / "usr", 10, 16, enterprise=True)
    lines = configure(tmp_path, environment={"CPATH": f"/nonexistent:{include}"})
    assert f"dff: TensorRT 10.16 headers in {include}" in lines


def test_library_of_another_major_version_is_not_taken(tmp_path: Path) -> None:
    include = headers(tmp_path / "TensorRT-10.0", 10, 0)
    site = tmp_path / "site-packages"
    (site / "tensorrt_libs").mkdir(parents=True)
    (site / "tensorrt_libs" / "__init__.py").write_text("")
    libnvinfer(site / "tensorrt_libs", 11)
    lines = configure(tmp_path, f"-DTensorRT_INCLUDE_DIR={include}", pythonpath=site)
    assert "dff: TensorRT 10.0 headers in " + str(include) in lines
    assert any(line.startswith("dff: libnvinfer.so.10 not found") for line in lines), lines


@pytest.mark.skipif(
    any(Path(d, "NvInferRuntime.h").is_file() for d in ("/usr/include/x86_64-linux-gnu", "/usr/local/tensorrt/include")),
    reason="TensorRT's headers are installed on this machine",
)
def test_no_headers_says_how_to_give_them(tmp_path: Path) -> None:
    lines = configure(tmp_path, f"-DTensorRT_ROOT={tmp_path / 'absent'}")
    assert "dff: TensorRT headers not found (set TensorRT_ROOT or TensorRT_INCLUDE_DIR)" in lines
