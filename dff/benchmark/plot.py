"""Speed-up against the key-frame interval l as a PNG: measured (median and range over repeats) and Eq. 7."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dff.atomic import atomic_path
from dff.benchmark.speedup import SpeedupBenchmark

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically (temporary file beside it, then rename) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as temp:
            figure.savefig(temp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return Path(path)


def plot_speedup(result: SpeedupBenchmark, path: str | Path, *, title: str) -> Path:
    """Plot measured s and Eq. 7's s (measured r, and FLOP r where counted) against l into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intervals = [row.interval for row in result.rows]
    measured = [row.measured_speedup for row in result.rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    axes.plot(intervals, intervals, color="0.8", linestyle=":", label="s = l (free propagation)")
    axes.plot(
        intervals,
        [row.predicted_speedup for row in result.rows],
        color="tab:blue",
        label=f"Eq. 7, measured r = {result.r_measured.median:.3f}",
    )
    if result.macs is not None:
        axes.plot(
            intervals,
            [row.flops_predicted_speedup for row in result.rows],
            color="tab:green",
            linestyle="--",
            label=f"Eq. 7, FLOP r = {result.macs.r_flops:.3f}",
        )
    axes.errorbar(
        intervals,
        [s.median for s in measured],
        yerr=[[s.median - s.low for s in measured], [s.high - s.median for s in measured]],
        fmt="o",
        color="tab:red",
        capsize=3,
        label=f"measured (median, range over {result.settings.repeats} repeats)",
    )
    curves = [row.predicted_speedup for row in result.rows] + [row.flops_predicted_speedup or 0.0 for row in result.rows]
    top = max(max(s.high for s in measured), max(curves))
    axes.set_ylim(0, top * 1.15)
    axes.set_xlim(0.5, max(intervals) + 0.5)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel("key-frame interval l")
    axes.set_ylabel("speed-up s over per-frame evaluation")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    return save_figure(figure, path)
