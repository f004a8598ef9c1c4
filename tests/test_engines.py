"""dff.engines without TensorRT: GPU identity, profiles, cache keys, build records, load-time checks, `dff build` errors.

Everything here runs on any machine: these are the checks made before TensorRT is imported or an
engine is deserialised. The files standing in for engine plans are plain bytes: no TensorRT reads
them, only the SHA-256 and record checks do. tests/test_tensorrt.py builds and runs real engines.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dff.atomic import write_bytes_atomic
from dff.cli import main
from dff.engines.build import BuildOptions, check_options, parse_bytes, plan_build
from dff.engines.cudart import CudaError, driver_too_old_message
from dff.engines.errors import INSTALL_HINT, EngineError
from dff.engines.gpu import GpuIdentity, current_gpu, parse_nvidia_smi
from dff.engines.loaders import WARP_PLUGIN
from dff.engines.memory import DevicePool, DeviceTensor, contiguous_run, size_class, split
from dff.engines.profiles import FrameSize, SizeProfile, input_shapes, make_profile, parse_frame_size, resolve_shape
from dff.engines.records import (
    FORMAT,
    BuildRecord,
    EngineKey,
    TensorRecord,
    cached_record,
    check_plugin_library,
    read_engine,
    read_record,
    select_record,
    write_record,
)
from dff.errors import ConfigError, ExportError
from dff.manifest import SizeRange, load_manifest

H200 = GpuIdentity(name="NVIDIA H200", compute_capability="9.0")
A10 = GpuIdentity(name="NVIDIA A10", compute_capability="8.6")
TRT = "10.9.0.34"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def make_key(**changes: object) -> EngineKey:
    key = EngineKey(
        role="feature",
        onnx_file="feature.onnx",
        onnx_sha256="a" * 64,
        gpu=H200,
        tensorrt_version=TRT,
        profile=SizeProfile(min=FrameSize(64, 64), opt=FrameSize(128, 160), max=FrameSize(128, 160)),
    )
    return dataclasses.replace(key, **changes)


def store_engine(
    directory: Path, key: EngineKey, plan: bytes, built_at: str = "2025-01-01T00:00:00+00:00"
) -> BuildRecord:
    """Write ``plan`` and its build record as ``dff build`` does."""
    import hashlib

    record = BuildRecord(
        format=FORMAT,
        key=key,
        digest=key.digest(),
        engine_file=f"{key.stem}.engine",
        engine_sha256=hashlib.sha256(plan).hexdigest(),
        engine_bytes=len(plan),
        built_at=built_at,
        build_seconds=1.5,
        tensors=(
            TensorRecord(
                name="frame",
                mode="input",
                dtype="uint8",
                shape=(-1, -1, -1, 3),
                profile=((1, 64, 64, 3), (1, 128, 160, 3), (1, 128, 160, 3)),
            ),
            TensorRecord(name="feat", mode="output", dtype="float32", shape=(-1, 32, -1, -1)),
        ),
    )
    write_bytes_atomic(directory / record.engine_file, plan)
    write_record(directory, record)
    return record


class TestGpuIdentity:
    def test_parse_nvidia_smi_picks_the_device(self) -> None:
        text = "NVIDIA H200, 9.0\nNVIDIA A10, 8.6\n"
        assert parse_nvidia_smi(text) == H200
        assert parse_nvidia_smi(text, device=1) == A10

    def test_parse_nvidia_smi_keeps_commas_in_names(self) -> None:
        assert parse_nvidia_smi("NVIDIA RTX 6000 Ada Generation, 8.9").name == "NVIDIA RTX 6000 Ada Generation"

    def test_parse_nvidia_smi_rejects_a_missing_device(self) -> None:
        with pytest.raises(EngineError, match="lists 1 GPU"):
            parse_nvidia_smi("NVIDIA H200, 9.0", device=1)

    def test_parse_nvidia_smi_rejects_output_without_compute_capability(self) -> None:
        with pytest.raises(EngineError, match="expected 'NAME, MAJOR.MINOR'"):
            parse_nvidia_smi("NVIDIA H200, [N/A]")

    def test_identity_needs_a_compute_capability(self) -> None:
        with pytest.raises(ValueError, match="compute capability like '8.6'"):
            GpuIdentity(name="NVIDIA H200", compute_capability="sm90")

    @pytest.mark.skipif(
        shutil.which("nvidia-smi") is not None or importlib.util.find_spec("cuda") is not None,
        reason="this machine can identify its GPU",
    )
    def test_no_gpu_is_a_clear_error(self) -> None:
        with pytest.raises(EngineError, match="no GPU found"):
            current_gpu()


class TestProfiles:
    sizes = SizeRange(min_height=64, min_width=64, max_height=128, max_width=160)

    def test_parse_frame_size(self) -> None:
        assert parse_frame_size(" 480x640 ", "--opt-size") == FrameSize(height=480, width=640)
        with pytest.raises(ConfigError, match=r"--opt-size expects HEIGHTxWIDTH .* got '480'"):
            parse_frame_size("480", "--opt-size")

    def test_defaults_come_from_the_export(self) -> None:
        profile = make_profile(self.sizes)
        assert profile == SizeProfile(min=FrameSize(64, 64), opt=FrameSize(128, 160), max=FrameSize(128, 160))
        assert profile.size_range(16) == self.sizes

    def test_opt_defaults_to_the_given_max(self) -> None:
        assert make_profile(self.sizes, max=FrameSize(96, 96)).opt == FrameSize(96, 96)

    @pytest.mark.parametrize(
        ("bound", "size"),
        [
            ("min", FrameSize(48, 64)),
            ("opt", FrameSize(128, 176)),
            ("max", FrameSize(144, 160)),
            ("opt", FrameSize(100, 96)),
        ],
    )
    def test_sizes_outside_the_export_are_rejected(self, bound: str, size: FrameSize) -> None:
        with pytest.raises(
            ConfigError,
            match=rf"--{bound}-size {size} is not a frame size this export allows "
            r"\(heights 64..128 and widths 64..160, multiples of 16\)",
        ):
            make_profile(self.sizes, **{bound: size})

    @pytest.mark.parametrize(
        "sizes",
        [
            {"min": FrameSize(96, 64), "opt": FrameSize(80, 160)},  # height out of order
            {"opt": FrameSize(128, 96), "max": FrameSize(128, 80)},  # width out of order
        ],
    )
    def test_min_opt_max_must_be_ordered_on_both_sides(self, sizes: dict[str, FrameSize]) -> None:
        with pytest.raises(ConfigError, match="min <= opt <= max in both height and width"):
            make_profile(self.sizes, **sizes)

    def test_input_shapes_of_the_flow_network(self, tiny_export: Path) -> None:
        manifest = load_manifest(tiny_export)
        shapes = input_shapes(manifest.models.flow, make_profile(manifest.sizes, opt=FrameSize(96, 128)))
        assert shapes == {name: ((1, 64, 64, 3), (1, 96, 128, 3), (1, 128, 160, 3)) for name in ("key_frame", "frame")}

    def test_input_shapes_on_the_feature_grid(self, tiny_export: Path) -> None:
        manifest = load_manifest(tiny_export)
        shapes = input_shapes(manifest.models.warp, make_profile(manifest.sizes))
        assert shapes["flow"] == ((1, 2, 4, 4), (1, 2, 8, 10), (1, 2, 8, 10))
        assert shapes["key_feat"][2] == (1, manifest.model.channels, 8, 10)

    def test_a_batch_range_for_many_streams(self, tiny_export: Path) -> None:
        manifest = load_manifest(tiny_export)
        shapes = input_shapes(manifest.models.flow, make_profile(manifest.sizes, max_batch=8))
        assert shapes["frame"] == ((1, 64, 64, 3), (8, 128, 160, 3), (8, 128, 160, 3))
        with pytest.raises(ConfigError, match="--max-batch must be 1 or more"):
            make_profile(manifest.sizes, max_batch=0)

    def test_unknown_dimension_names_are_an_export_error(self) -> None:
        with pytest.raises(ExportError, match="dimension 'T' is not one of N, H, W, H/k, W/k"):
            resolve_shape(("N", "T"), FrameSize(64, 64), "x.onnx input 'y'")


class TestEngineKey:
    def test_digest_is_stable_and_names_the_files(self) -> None:
        assert make_key().digest() == make_key().digest()
        assert len(make_key().digest()) == 64
        assert make_key().stem == f"feature-{make_key().digest()[:16]}"

    @pytest.mark.parametrize(
        "change",
        [
            {"onnx_sha256": "b" * 64},
            {"gpu": A10},
            {"gpu": GpuIdentity(name="NVIDIA H200", compute_capability="9.1")},
            {"tensorrt_version": "11.1.0"},
            {"profile": SizeProfile(min=FrameSize(64, 64), opt=FrameSize(96, 96), max=FrameSize(128, 160))},
            {"workspace": 1 << 30},
            {"plugin_sha256": "c" * 64},
            {"onnx_file": "warp_plugin.onnx"},
            {"profile": SizeProfile(min=FrameSize(64, 64), opt=FrameSize(128, 160), max=FrameSize(128, 160), max_batch=4)},
        ],
    )
    def test_every_dependency_changes_the_digest(self, change: dict[str, object]) -> None:
        assert make_key(**change).digest() != make_key().digest()


class TestBuildRecords:
    def test_round_trip(self, tmp_path: Path) -> None:
        record = store_engine(tmp_path, make_key(), b"plan bytes")
        assert read_record(tmp_path / f"{make_key().stem}.json") == record
        assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files

    def test_unreadable_record(self, tmp_path: Path) -> None:
        path = tmp_path / "feature-0123456789abcdef.json"
        path.write_text('{"format": "dff-engine-1", "key": ')
        with pytest.raises(EngineError, match=r"build record .* is unreadable .* run `dff build` again"):
            read_record(path)

    def test_record_of_another_format(self, tmp_path: Path) -> None:
        store_engine(tmp_path, make_key(), b"plan")
        path = tmp_path / f"{make_key().stem}.json"
        path.write_text(path.read_text().replace(FORMAT, "dff-engine-0"))
        with pytest.raises(EngineError, match="has format 'dff-engine-0', this dff reads 'dff-engine-1'"):
            read_record(path)

    def test_cache_hit_needs_an_intact_engine_of_the_same_key(self, tmp_path: Path) -> None:
        assert cached_record(tmp_path, make_key()) is None
        record = store_engine(tmp_path, make_key(), b"plan")
        assert cached_record(tmp_path, make_key()) == record
        assert cached_record(tmp_path, make_key(workspace=1 << 30)) is None
        (tmp_path / record.engine_file).write_bytes(b"pla")  # truncated: rebuild
        assert cached_record(tmp_path, make_key()) is None


class TestSelectRecord:
    def select(self, directory: Path, **overrides: object) -> BuildRecord:
        arguments = {"onnx_sha256s": {"a" * 64}, "gpu": H200, "tensorrt_version": TRT, **overrides}
        return select_record(directory, "feature", **arguments)  # type: ignore[arg-type]

    def test_no_engines(self, tmp_path: Path) -> None:
        with pytest.raises(
            EngineError, match=r"has no feature engine: build the engines with `dff build EXPORT_DIR --out"
        ):
            self.select(tmp_path)

    def test_engine_for_another_gpu(self, tmp_path: Path) -> None:
        store_engine(tmp_path, make_key(gpu=A10), b"plan")
        with pytest.raises(EngineError) as error:
            self.select(tmp_path)
        message = str(error.value)
        assert "built for NVIDIA A10 (compute capability 8.6) with TensorRT 10.9.0.34" in message
        assert "this machine has NVIDIA H200 (compute capability 9.0) with TensorRT 10.9.0.34" in message
        assert "run `dff build` again on this machine" in message

    def test_engine_for_another_tensorrt(self, tmp_path: Path) -> None:
        store_engine(tmp_path, make_key(tensorrt_version="10.3.0"), b"plan")
        with pytest.raises(
            EngineError, match=r"with TensorRT 10.3.0, but this machine .* with TensorRT 10.9.0.34.*dff build"
        ):
            self.select(tmp_path)

    def test_engine_from_another_export(self, tmp_path: Path) -> None:
        store_engine(tmp_path, make_key(), b"plan")
        with pytest.raises(
            EngineError, match=r"built from another export \(feature.onnx has changed since\): run `dff build` again"
        ):
            self.select(tmp_path, onnx_sha256s={"b" * 64})

    def test_newest_engine_of_this_gpu_wins(self, tmp_path: Path) -> None:
        store_engine(tmp_path, make_key(gpu=A10), b"a10", built_at="2025-03-01T00:00:00+00:00")
        store_engine(tmp_path, make_key(), b"old", built_at="2025-01-01T00:00:00+00:00")
        newest = store_engine(tmp_path, make_key(workspace=1 << 30), b"new", built_at="2025-02-01T00:00:00+00:00")
        assert self.select(tmp_path) == newest


class TestReadEngine:
    def test_intact_engine(self, tmp_path: Path) -> None:
        record = store_engine(tmp_path, make_key(), b"plan bytes")
        assert read_engine(tmp_path, record) == b"plan bytes"

    def test_corrupt_engine(self, tmp_path: Path) -> None:
        record = store_engine(tmp_path, make_key(), b"plan bytes")
        (tmp_path / record.engine_file).write_bytes(b"plan byt")
        with pytest.raises(EngineError, match=r"is corrupt: its SHA-256 differs .* run `dff build` again"):
            read_engine(tmp_path, record)

    def test_missing_engine(self, tmp_path: Path) -> None:
        record = store_engine(tmp_path, make_key(), b"plan")
        (tmp_path / record.engine_file).unlink()
        with pytest.raises(EngineError, match="is missing .* run `dff build` again"):
            read_engine(tmp_path, record)

    def test_plugin_library_must_be_the_one_built_against(self, tmp_path: Path) -> None:
        library = tmp_path / "libdff_warp_plugin.so"
        library.write_bytes(b"library one")
        import hashlib

        record = store_engine(
            tmp_path, make_key(role="warp", plugin_sha256=hashlib.sha256(b"library one").hexdigest()), b"p"
        )
        check_plugin_library(record, library)
        library.write_bytes(b"library two")
        with pytest.raises(EngineError, match=r"is not the one the warp engine was built against .* --plugin-lib"):
            check_plugin_library(record, library)
        with pytest.raises(EngineError, match="which does not exist"):
            check_plugin_library(record, tmp_path / "absent.so")


class TestPlanBuild:
    def plan(self, tiny_export: Path, options: BuildOptions, gpu: GpuIdentity = H200, version: str = TRT):
        return plan_build(tiny_export, load_manifest(tiny_export), options, gpu=gpu, tensorrt_version=version)

    def test_default_plan(self, tiny_export: Path) -> None:
        plan = self.plan(tiny_export, BuildOptions())
        assert [e.key.role for e in plan.engines] == ["feature", "flow", "warp", "task"]
        assert [e.onnx_path.name for e in plan.engines] == ["feature.onnx", "flow.onnx", "warp.onnx", "task.onnx"]
        assert plan.engines_dir == tiny_export / "engines"
        assert plan.timing_cache.name == "timing-nvidia-h200-sm9.0-trt10.9.0.34.cache"
        assert plan.timing_cache_elsewhere is None  # its own file: started over if TensorRT refuses it
        assert plan.engines[0].input_shapes == {"frame": ((1, 64, 64, 3), (1, 128, 160, 3), (1, 128, 160, 3))}

    def test_plugin_warp_changes_only_the_warp_key(self, tiny_export: Path, tmp_path: Path) -> None:
        library = tmp_path / "libdff_warp_plugin.so"
        library.write_bytes(b"a plugin library")
        plain = self.plan(tiny_export, BuildOptions())
        plugin = self.plan(tiny_export, BuildOptions(plugin_lib=library))
        assert plugin.engines[2].onnx_path.name == "warp_plugin.onnx"
        assert plugin.engines[2].key.plugin_sha256 is not None
        changed = [a.key.role for a, b in zip(plain.engines, plugin.engines) if a.key != b.key]
        assert changed == ["warp"]

    def test_gpu_tensorrt_and_profile_change_every_key(self, tiny_export: Path) -> None:
        base = {e.key.digest() for e in self.plan(tiny_export, BuildOptions()).engines}
        for other in (
            self.plan(tiny_export, BuildOptions(), gpu=A10),
            self.plan(tiny_export, BuildOptions(), version="11.1.0"),
            self.plan(tiny_export, BuildOptions(opt_size=FrameSize(96, 96))),
        ):
            assert base.isdisjoint(e.key.digest() for e in other.engines)

    def test_a_users_timing_cache_is_never_overwritten_by_another_gpus(self, tiny_export: Path, tmp_path: Path) -> None:
        user = tmp_path / "shared" / "trt.timing"
        h200 = self.plan(tiny_export, BuildOptions(timing_cache=user))
        a10 = self.plan(tiny_export, BuildOptions(timing_cache=user), gpu=A10, version="11.1.0")
        assert h200.timing_cache == a10.timing_cache == user
        assert h200.timing_cache_elsewhere == user.with_name("trt-nvidia-h200-sm9.0-trt10.9.0.34.timing")
        assert a10.timing_cache_elsewhere == user.with_name("trt-nvidia-a10-sm8.6-trt11.1.0.timing")
        suffixless = self.plan(tiny_export, BuildOptions(timing_cache=tmp_path / "cache"))
        assert suffixless.timing_cache_elsewhere == tmp_path / "cache-nvidia-h200-sm9.0-trt10.9.0.34.cache"

    def test_plugin_warp_needs_the_library(self, tiny_export: Path, tmp_path: Path) -> None:
        manifest = load_manifest(tiny_export)
        with pytest.raises(ConfigError, match=r"--warp plugin needs the plugin library: pass --plugin-lib PATH"):
            check_options(manifest, BuildOptions(warp="plugin"))
        with pytest.raises(ConfigError, match=r"--plugin-lib .*absent.so does not exist: build it with `make plugins`"):
            check_options(manifest, BuildOptions(plugin_lib=tmp_path / "absent.so"))

    def test_gridsample_warp_ignores_the_library(self, tiny_export: Path, tmp_path: Path) -> None:
        library = tmp_path / "lib.so"
        library.write_bytes(b"x")
        plan = self.plan(tiny_export, BuildOptions(plugin_lib=library, warp="gridsample"))
        assert plan.engines[2].onnx_path.name == "warp.onnx" and plan.plugin_lib is None

    @pytest.mark.parametrize(
        ("text", "expected"), [("2GiB", 2 << 30), ("512MiB", 512 << 20), ("1.5g", 3 << 29), ("4096", 4096)]
    )
    def test_parse_bytes(self, text: str, expected: int) -> None:
        assert parse_bytes(text) == expected

    @pytest.mark.parametrize("text", ["", "0", "-1G", "2 parsecs"])
    def test_parse_bytes_rejects(self, text: str) -> None:
        with pytest.raises(ConfigError, match="--workspace expects a positive size such as 2GiB"):
            parse_bytes(text)


class TestBuildCommand:
    def run(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
        code = main(["build", *argv])
        return code, capsys.readouterr().err

    @pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
    def test_without_tensorrt_names_the_install(self, tiny_export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self.run(capsys, str(tiny_export))
        assert code == 2
        assert "`dff build` needs the Python package 'tensorrt'" in err
        assert INSTALL_HINT in err
        assert "deep-feature-flow[tensorrt-cu13]'` (NVIDIA driver 580 or newer)" in err
        assert "deep-feature-flow[tensorrt-cu12]'` (driver 525 or newer)" in err

    def test_profile_errors_come_before_tensorrt(self, tiny_export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self.run(capsys, str(tiny_export), "--opt-size", "256x256")
        assert code == 2
        assert "--opt-size 256x256 is not a frame size this export allows" in err

    def test_batch_below_one(self, tiny_export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self.run(capsys, str(tiny_export), "--max-batch", "0")
        assert code == 2 and "--max-batch must be 1 or more (frames per engine call); got 0" in err

    def test_records_without_a_batch_range_read_as_batch_1(self, tmp_path: Path) -> None:
        # Records written before --max-batch existed have no max_batch in their profile.
        store_engine(tmp_path, make_key(), b"plan")
        path = tmp_path / f"{make_key().stem}.json"
        data = json.loads(path.read_text())
        del data["key"]["profile"]["max_batch"]
        path.write_text(json.dumps(data))
        assert read_record(path).key.profile.max_batch == 1

    def test_malformed_size(self, tiny_export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self.run(capsys, str(tiny_export), "--max-size", "big")
        assert code == 2 and "--max-size expects HEIGHTxWIDTH in pixels, such as 480x640; got 'big'" in err

    def test_missing_export(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, err = self.run(capsys, str(tmp_path / "absent"))
        assert code == 2 and "does not exist: create it with `dff export" in err

    def test_changed_onnx_file_is_refused(
        self, tiny_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        copy = tmp_path / "export"
        shutil.copytree(tiny_export, copy)
        with open(copy / "task.onnx", "ab") as handle:
            handle.write(b"\0")
        code, err = self.run(capsys, str(copy))
        assert code == 2 and "task.onnx (task model) does not match the SHA-256" in err


class TestTensorRTBackendWithoutTensorRT:
    def test_importing_the_backend_needs_neither_tensorrt_nor_torch(self) -> None:
        code = (
            "import sys, dff.runtime.backends.tensorrt, dff.engines.build, dff.engines.loaders; "
            "print(sorted(m for m in ('tensorrt', 'torch', 'cuda') if m in sys.modules))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "[]"

    @pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
    def test_opening_it_names_the_install(self, tiny_export: Path) -> None:
        from dff.runtime import open_backend

        with pytest.raises(
            EngineError, match=r"the tensorrt backend needs the Python package 'tensorrt'.*pip install 'deep-feature-flow\[tensorrt-cu13\]'"
        ):
            open_backend("tensorrt", model=tiny_export)

    def test_its_options(self) -> None:
        from dff.runtime.backends import backend_options

        assert backend_options("tensorrt") == ["engines", "plugin_lib", "cuda_graph", "device"]


def test_build_record_is_plain_json(tmp_path: Path) -> None:
    """The record is for people too: key fields, build time, tensors, all readable JSON."""
    store_engine(tmp_path, make_key(), b"plan")
    data = json.loads((tmp_path / f"{make_key().stem}.json").read_text())
    assert data["key"]["gpu"] == {"name": "NVIDIA H200", "compute_capability": "9.0"}
    assert data["key"]["profile"]["opt"] == {"height": 128, "width": 160}
    assert data["tensors"][0]["profile"][2] == [1, 128, 160, 3]


class TestDevicePool:
    """The pool's policy on real memory: host blocks from libc's malloc/free stand in for cudaMalloc/cudaFree."""

    @pytest.fixture
    def pool(self) -> Iterator[tuple[DevicePool, list[int], list[int]]]:
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        allocated: list[int] = []
        freed: list[int] = []

        def allocate(nbytes: int) -> int:
            pointer = libc.malloc(nbytes)
            ctypes.memset(pointer, 0, nbytes)  # the block is real and writable
            allocated.append(pointer)
            return pointer

        def free(pointer: int) -> None:
            freed.append(pointer)
            libc.free(pointer)

        pool = DevicePool(allocate, free, synchronize=lambda: None, idle_floor=1 << 20)
        yield pool, allocated, freed
        pool.close()

    @pytest.mark.parametrize("nbytes", [1, 511, 512, 4097, 3 << 20, (1 << 30) + 1])
    def test_size_classes_waste_at_most_an_eighth(self, nbytes: int) -> None:
        block = size_class(nbytes)
        assert block >= nbytes and (block - max(nbytes, 512)) <= max(nbytes, 512) / 8
        assert size_class(block) == block

    def test_a_dropped_handles_block_is_reused(self, pool) -> None:
        pool, allocated, _ = pool
        first = DeviceTensor(pool, (1, 64, 64, 3), np.dtype(np.uint8))
        address = first.pointer
        del first
        gc.collect()
        second = DeviceTensor(pool, (1, 60, 68, 3), np.dtype(np.uint8))  # another size of the same class
        assert second.pointer == address and len(allocated) == 1

    def test_a_held_handles_block_is_never_handed_out(self, pool) -> None:
        pool, _, _ = pool
        held = [DeviceTensor(pool, (1024,), np.dtype(np.float32)) for _ in range(4)]
        assert len({t.pointer for t in held}) == 4

    def test_blocks_of_an_old_frame_size_are_freed(self, pool) -> None:
        pool, allocated, freed = pool
        big = [DeviceTensor(pool, (1, 32, 256, 512), np.dtype(np.float32)) for _ in range(3)]  # 3 x 16 MiB
        del big
        gc.collect()
        assert pool.idle_bytes == 3 * (16 << 20) and not freed  # idle, kept until a new block is needed
        small = [DeviceTensor(pool, (1, 32, 16, 32), np.dtype(np.float32)) for _ in range(2)]
        # Idle bytes are trimmed to max(live bytes, floor) before allocating: the 16 MiB blocks go.
        assert len(freed) == 3 and pool.idle_bytes == 0
        assert pool.allocated_bytes == pool.live_bytes == 2 * size_class(32 * 16 * 32 * 4)
        del small
        gc.collect()
        assert pool.idle_bytes == 2 * size_class(32 * 16 * 32 * 4) and len(allocated) == 5

    def test_recently_wanted_sizes_are_kept_over_old_ones(self, pool) -> None:
        pool, _, freed = pool
        pool.idle_floor = 4 << 20
        old = DeviceTensor(pool, (2 << 20,), np.dtype(np.uint8))
        recent = DeviceTensor(pool, (3 << 20,), np.dtype(np.uint8))
        old_address, recent_address = old.pointer, recent.pointer
        del old, recent
        gc.collect()
        DeviceTensor(pool, (1 << 10,), np.dtype(np.uint8))  # a new class: trims 5 MiB idle down to the 4 MiB floor
        assert freed == [old_address]
        again = DeviceTensor(pool, (3 << 20,), np.dtype(np.uint8))
        assert again.pointer == recent_address

    def test_out_of_memory_frees_idle_blocks_and_retries(self) -> None:
        blocks: dict[int, bytearray] = {}  # real memory, bytearrays by address
        failures: list[int] = []

        def allocate(nbytes: int) -> int:
            if sum(map(len, blocks.values())) + nbytes > 10 << 20:  # a 10 MiB device
                failures.append(nbytes)
                raise CudaError("cudaMalloc failed: cudaErrorMemoryAllocation (2)")
            block = bytearray(nbytes)
            address = ctypes.addressof((ctypes.c_char * nbytes).from_buffer(block))
            blocks[address] = block
            return address

        pool = DevicePool(allocate, lambda address: blocks.pop(address), synchronize=lambda: None, idle_floor=64 << 20)
        idle = DeviceTensor(pool, (8 << 20,), np.dtype(np.uint8))
        del idle
        gc.collect()
        held = DeviceTensor(pool, (4 << 20,), np.dtype(np.uint8))  # 8 + 4 MiB do not fit: the idle 8 MiB go
        assert failures == [4 << 20] and list(blocks) == [held.pointer]
        pool.close()

    def test_close_frees_everything_and_late_drops_do_nothing(self, pool) -> None:
        pool, allocated, freed = pool
        held = DeviceTensor(pool, (100,), np.dtype(np.float32))
        dropped = DeviceTensor(pool, (200,), np.dtype(np.float32))
        del dropped
        gc.collect()
        pool.close()
        assert sorted(freed) == sorted(allocated) and pool.allocated_bytes == 0
        del held  # its finalizer runs after close(): no double free
        gc.collect()
        assert len(freed) == len(allocated)
        with pytest.raises(RuntimeError, match="closed"):
            DeviceTensor(pool, (1,), np.dtype(np.uint8))

    def test_handles_dropped_on_other_threads(self, pool) -> None:
        pool, allocated, _ = pool

        def churn() -> None:
            for _ in range(200):
                DeviceTensor(pool, (1, 4, 4, 4), np.dtype(np.float32))

        threads = [threading.Thread(target=churn) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gc.collect()
        assert pool.live_bytes == 0 and len(allocated) <= 4  # at most one block per thread in flight


class TestBatchViews:
    """Per-frame views of batch tensors, on real (host) memory from the pool."""

    @pytest.fixture
    def pool(self) -> Iterator[DevicePool]:
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        pool = DevicePool(libc.malloc, libc.free, synchronize=lambda: None)
        yield pool
        pool.close()

    def test_split_views_cover_the_batch_and_keep_it_alive(self, pool: DevicePool) -> None:
        batch = DeviceTensor(pool, (3, 2, 4, 5), np.dtype(np.float16))
        base, live = batch.pointer, pool.live_bytes
        views = split(batch)
        del batch
        gc.collect()
        assert pool.live_bytes == live  # the views hold the batch's block
        assert [v.pointer - base for v in views] == [0, 80, 160] and {v.shape for v in views} == {(1, 2, 4, 5)}
        del views
        gc.collect()
        assert pool.live_bytes == 0

    def test_consecutive_views_are_a_batch_again_without_a_copy(self, pool: DevicePool) -> None:
        views = split(DeviceTensor(pool, (4, 8), np.dtype(np.float32)))
        run = contiguous_run(views[1:3])
        assert run is not None and run.shape == (2, 8) and run.pointer == views[1].pointer and run.nbytes == 64
        assert contiguous_run([views[2], views[1]]) is None  # out of order: the backend copies
        assert contiguous_run([views[0], DeviceTensor(pool, (1, 8), np.dtype(np.float32))]) is None


class TestCudaErrors:
    def test_driver_too_old_for_cuda_13(self) -> None:
        message = driver_too_old_message("cudaGetDeviceCount", driver_version=12040, runtime_version=13000)
        assert message.startswith("cudaGetDeviceCount failed: the NVIDIA driver is too old for this CUDA")
        assert "supports CUDA up to 12.4, cuda-python and TensorRT here are built for CUDA 13.0" in message
        assert "pip install 'deep-feature-flow[tensorrt-cu12]'" in message and "580 or newer" in message

    def test_driver_too_old_for_cuda_12(self) -> None:
        message = driver_too_old_message("cudaSetDevice", driver_version=11080, runtime_version=12060)
        assert "supports CUDA up to 11.8" in message and "built for CUDA 12.6); update the NVIDIA driver" in message

    def test_no_driver(self) -> None:
        assert "no NVIDIA driver is installed" in driver_too_old_message("cudaGetDeviceCount", 0, 13000)


def test_warp_plugin_identity_is_the_exported_nodes() -> None:
    from dff.export.warp_graph import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION

    assert WARP_PLUGIN == (PLUGIN_OP, PLUGIN_VERSION, PLUGIN_NAMESPACE)
