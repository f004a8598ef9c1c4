"""``dff demo``'s fast path: the shipped model's bf16 and int8 configurations timed beside float32 ONNX Runtime."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dff.cli import main
from dff.commands.demo import FAST_PATHS
from dff.manifest import load_manifest

ROW = re.compile(r"^(\S.*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)%$", re.MULTILINE)


def test_demo_shows_every_configuration_with_its_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--frames", "10", "--height", "64", "--width", "96", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    section = printed[printed.index("fast path (DFF, l = 5"):]
    rows = {name: (float(fps), float(miou), float(agree)) for name, fps, _, miou, agree in ROW.findall(section)}
    import openvino as ov

    # Without native bf16 OpenVINO computes f32 whatever it is asked, and the bf16 rows say so.
    native = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    shown = {name if native or "bf16" not in name else f"{name} (f32 here)" for name in FAST_PATHS}
    assert set(rows) == shown
    assert rows["float32 ONNX Runtime"][2] == 100.0
    assert all(0 < miou <= 100 and 90 <= agree <= 100 for _, miou, agree in rows.values())
    fastest = max(rows, key=lambda name: rows[name][0])
    line = re.search(r"fastest here: (.*)", section).group(1)
    assert fastest in line
    record = load_manifest(tmp_path / "export-int8").quantization
    assert record is not None and record.calibration_source == "frames given in memory"
    # A second run replaces the demo's own int8 export; anything else in its place is refused, never deleted.
    assert main(args) == 0
    capsys.readouterr()
    (tmp_path / "export-int8" / "manifest.json").unlink()
    assert main(args) == 2
    assert "is in the way" in capsys.readouterr().err
    assert (tmp_path / "export-int8" / "feature.onnx").is_file()
