"""The PNG of a benchmark run: latency distributions (CDFs) and the throughput bars.

Needs matplotlib (the optional ``bench`` extra); without it the run still writes its JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Samples = dict[str, list[float]]


MAX_POINTS = 2000


def _cdf(ax: Any, samples: Samples, title: str, log: bool = False) -> None:
    from matplotlib.ticker import FuncFormatter

    for label, seconds in samples.items():
        if not seconds:
            continue
        ms = sorted(1000 * s for s in seconds)
        n = len(ms)
        # Large sets (the echo server's tens of thousands) are drawn at 2000 quantiles.
        picks = (
            range(n)
            if n <= MAX_POINTS
            else [i * (n - 1) // (MAX_POINTS - 1) for i in range(MAX_POINTS)]
        )
        xs = [ms[i] for i in picks]
        ys = [(i + 1) / n for i in picks]
        ax.step(xs, ys, where="post", label=f"{label} (n={n})")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("latency (ms)" + (", log scale" if log else ""))
    ax.set_ylabel("fraction of messages")
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.grid(True, alpha=0.3)
    if samples:
        ax.legend(fontsize=8, loc="lower right")


def _bars(ax: Any, details: dict[str, Any]) -> None:
    labels: list[str] = []
    values: list[float] = []
    p2 = details.get("p2", {}).get("arms", {})
    for arm in ("echo", "relay", "gateway"):
        if arm in p2:
            labels.append(f"P2 {arm}\n(stub bot)")
            values.append(p2[arm]["rate_per_s"])
    p1 = details.get("p1", {}).get("throughput", {})
    for arm in ("direct", "gateway"):
        if arm in p1:
            labels.append(f"P1 {arm}\n(Rasa)")
            values.append(p1[arm]["rate_per_s"])
    p5 = details.get("p5", {}).get("arms", {})
    for arm, short in (("one_replica", "1 replica"), ("two_replicas", "2 replicas")):
        if arm in p5:
            labels.append(f"P5 gateway\n{short}")
            values.append(p5[arm]["rate_per_s"])
    if not values:
        ax.set_visible(False)
        return
    bars = ax.bar(range(len(values)), values, color="#4c72b0")
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("messages (turns) per second, log scale")
    ax.set_title("Throughput at saturation", fontsize=10)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:.0f}" if value >= 10 else f"{value:.1f}",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.grid(True, axis="y", alpha=0.3)


def _figures(ax: Any, document: dict[str, Any]) -> None:
    """The six figures against their targets, as a table."""
    details = document["details"]
    rows = []
    for key, target in details.get("targets", {}).items():
        value = document.get(key)
        met = details.get("met", {}).get(key)
        shown = "—" if value is None else f"{value:.3g}" if value < 1000 else f"{value:.0f}"
        rows.append([key, shown, target, "n/a" if met is None else "met" if met else "MISSED"])
    ax.axis("off")
    table = ax.table(
        cellText=rows,
        colLabels=["figure", "measured", "target", "result"],
        loc="center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.6)
    table.auto_set_column_width([0, 1, 2, 3])
    for (row, col), cell in table.get_celld().items():
        if row > 0 and col == 3:
            verdict = cell.get_text().get_text()
            cell.set_facecolor({"met": "#d8f0d8", "MISSED": "#f6d5d5"}.get(verdict, "white"))
    ax.set_title("Figures vs targets (ratios measured within this run)", fontsize=10)


def write_plot(
    path: Path, samples: dict[str, Samples], document: dict[str, Any], title: str
) -> bool:
    """Draw the figure into ``path``; False when matplotlib is not installed."""
    details = document["details"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    _cdf(axes[0][0], samples.get("p1", {}), "P1 bot turn, one customer at a time (Rasa)")
    _cdf(
        axes[0][1],
        samples.get("p1_saturation", {}),
        "P1 bot turn at saturation (N concurrent customers)",
        log=True,
    )
    _cdf(
        axes[0][2], samples.get("p2", {}), "P2 message round trip, stub bot, N customers", log=True
    )
    rate = details.get("p3", {}).get("offered_rate_per_s")
    _cdf(
        axes[1][0],
        samples.get("p3", {}),
        f"P3 human-mode delivery, {rate or 0:g} msg/s and lower (lost = at drain deadline)",
        log=True,
    )
    _bars(axes[1][1], details)
    _figures(axes[1][2], document)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
