"""What every report figure shares: the Agg backend, one style, colour maps readable on white, the sign
convention of improvements, and the metric's axis scale."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from scalinglab.format import number  # noqa: F401  (re-exported: the figures' sentences)

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9})

# viridis without its pale yellow end, so the largest model's line stays visible on white
SIZE_CMAP = ListedColormap(plt.get_cmap("viridis")(np.linspace(0.0, 0.82, 256)), name="viridis_on_white")
IMPROVEMENT_LABEL = "improvement, % (positive = better)"
EXTRAPOLATED = {"ls": "--", "lw": 1.4}


def improvement_percent(value: np.ndarray, reference: float, higher_is_better: bool) -> np.ndarray:
    """The improvement of `value` over `reference` in %, positive = better for either direction of the metric."""
    change = (np.asarray(value, dtype=float) - reference) / abs(reference) * 100.0
    return (change if higher_is_better else -change) + 0.0  # + 0.0: no "-0.0%"


def metric_scale(higher_is_better: bool) -> str:
    """Losses and errors span decades (log axis); mAP and accuracy live in [0, 1] (linear axis)."""
    return "linear" if higher_is_better else "log"


def legend_below(ax: Axes, ncol: int = 2) -> None:
    """The legend under the axes, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=7, frameon=False)


def legend_right(ax: Axes) -> None:
    """The legend beside the axes, never over the data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)


def scale_label(value: float) -> str:
    """A model or data scale as the seed writes it: 1X, 0.075X, 7X."""
    return f"{value:g}X"


def tidy_log_axis(axis) -> None:
    """Readable ticks on a log axis: on one spanning under three decades, ticks at 1, 2 and 5 per decade
    (at every digit and 1.5 under one decade, so a metric between 0.6 and 0.9 gets labels) written as
    plain numbers (2e6, 0.3) instead of 2x10^6 or 3x10^-1; never overlapping minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if axis.get_scale() != "log":
        return
    low, high = sorted(axis.get_view_interval())
    if low > 0 and np.log10(high / low) < 3:
        subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0) if np.log10(high / low) < 1 else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))
    axis.set_minor_formatter(NullFormatter())
