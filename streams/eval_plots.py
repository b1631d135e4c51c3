"""PNG plots of an evaluation report (matplotlib, no display needed).

* ``by_type.png``: per injection type, what was detected and at what
  false-positive cost, coloured by family, with the median delay;
* ``tradeoff.png`` (with ``--sweep``): the SecMLOps trade-off, each
  security measure as a point: detection rate against throughput cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_by_type", "plot_tradeoff", "write_plots"]

_FAMILY_COLOURS = {
    "integrity": "tab:blue",
    "adversarial": "tab:red",
    "natural": "tab:green",
    "model": "tab:purple",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Every plot the report supports, into ``directory``; caption → path."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = {}
    if report["by_type"]:
        plots["Detection per injection type"] = plot_by_type(report, directory / "by_type.png")
    if report.get("sweep"):
        plots["The trade-off"] = plot_tradeoff(report, directory / "tradeoff.png")
    return plots


def plot_by_type(report: dict[str, Any], path: Path) -> Path:
    """Detection rate (bars) and false-positive rate (markers) per type; delay as labels."""
    plt = _pyplot()
    by_type = report["by_type"]
    rank = {family: i for i, family in enumerate(_FAMILY_COLOURS)}
    kinds = sorted(by_type, key=lambda k: (rank.get(by_type[k]["family"], len(rank)), k))
    rows = [report["by_type"][k] for k in kinds]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(kinds) + 2), 4.5), dpi=120)
    xs = range(len(kinds))
    colours = [_FAMILY_COLOURS.get(r["family"], "tab:grey") for r in rows]
    ax.bar(xs, [r["detection_rate"] for r in rows], color=colours, alpha=0.8)
    ax.scatter(xs, [r["false_positive_rate"] for r in rows], color="black", marker="x", zorder=3)
    for x, row in zip(xs, rows, strict=True):
        delay = row["median_delay_frames"]
        if delay is not None:
            ax.annotate(
                f"{delay:g} fr",
                (x, row["detection_rate"]),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize=7,
            )
    ax.set_xticks(list(xs), kinds, rotation=45, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("detection rate (bars), false-positive rate (x)")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c)
        for f, c in _FAMILY_COLOURS.items()
        if f in {r["family"] for r in rows}
    ]
    labels = [f for f in _FAMILY_COLOURS if f in {r["family"] for r in rows}]
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("What the monitors caught, per injection type (labels: median delay)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_tradeoff(report: dict[str, Any], path: Path) -> Path:
    """The trade-off curve: detection rate against throughput cost, one point per measure."""
    plt = _pyplot()
    rows = [
        (name, 1 - row["throughput_vs_none"], row["detection_rate"] or 0.0)
        for name, row in report["sweep"].items()
        if row["throughput_vs_none"] is not None
    ]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([c for _, c, _ in rows], [d for _, _, d in rows], color="tab:red")
    for name, cost, detected in rows:
        ax.annotate(name, (cost, detected), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("throughput cost (1 - frames/s ÷ frames/s with no monitor)")
    ax.set_ylabel("attacked frames flagged (quarantine recall)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("What each security measure buys, and what it costs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
