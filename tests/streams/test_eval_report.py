"""The evaluation report: Markdown tables and the PNG plots from a scored report."""

from __future__ import annotations

from pathlib import Path

from streams.eval_cli import markdown
from streams.eval_plots import write_plots
from streams.eval_run import _sweep_summary

RUN = {
    "frames": 10,
    "lost_frames": 0,
    "outcomes": {"trusted": 7, "quarantined": 2, "deadletter": 1},
    "clean": {"frames": 7, "false_positive_rate": 0.0},
    "quarantine": {"precision": 1.0, "recall": 1.0},
    "by_type": {
        "pgd": {
            "family": "adversarial",
            "frames": 2,
            "detection_rate": 1.0,
            "false_positive_rate": 0.0,
            "median_delay_frames": 0,
            "median_delay_ms": 0.0,
        }
    },
    "throughput_fps": 20.0,
    "latency_ms": {"p50": 100.0, "p99": 200.0},
}


def with_(fps: float, recall: float) -> dict:
    return {**RUN, "throughput_fps": fps, "quarantine": {"precision": 1.0, "recall": recall}}


def test_a_sweep_compares_each_measure_with_no_measure():
    sweep = _sweep_summary(
        {"none": with_(40.0, 0.0), "adversarial.energy": with_(30.0, 0.5), "all": with_(20.0, 1.0)}
    )
    assert sweep["none"]["throughput_vs_none"] == 1.0
    assert sweep["adversarial.energy"]["throughput_vs_none"] == 0.75
    assert sweep["all"] == {
        "detection_rate": 1.0,
        "false_positive_rate": 0.0,
        "throughput_fps": 20.0,
        "throughput_vs_none": 0.5,
        "latency_ms": {"p50": 100.0, "p99": 200.0},
        "by_type": {"pgd": 1.0},
    }


def test_the_markdown_report_has_the_totals_the_types_and_the_sweep(tmp_path):
    report = {**RUN, "sweep": _sweep_summary({"none": with_(40.0, 0.0), "all": with_(20.0, 1.0)})}
    text = markdown(report)
    assert "| 10 | 0 | 7 | 2 | 1 | 0.0 % | 100.0 % | 100.0 % |" in text
    assert "| pgd | adversarial | 2 | 100.0 % | 0.0 % | 0 frames (0.0 ms) |" in text
    assert "| all | 100.0 % | 0.0 % | 20.0 | 0.50 |" in text


def test_plots_are_pngs_the_report_links_to(tmp_path):
    report = {**RUN, "sweep": _sweep_summary({"none": with_(40.0, 0.0), "all": with_(20.0, 1.0)})}
    plots = write_plots(report, tmp_path / "plots")
    assert sorted(p.name for p in plots.values()) == ["by_type.png", "tradeoff.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots.values())
    text = markdown(report, {c: Path("plots") / p.name for c, p in plots.items()})
    assert "![The trade-off](plots/tradeoff.png)" in text
    assert "tradeoff.png" not in "".join(p.name for p in write_plots(RUN, tmp_path / "x").values())


def test_a_model_drill_reports_its_rollback():
    drill = {
        "family": "model",
        "frames": 60,
        "stretches": 1,
        "detection_rate": 1.0,
        "false_positive_rate": 0.0,
        "median_delay_frames": 42,
        "median_delay_ms": 1400.0,
        "undetected_stretches": 0,
        "served_by_degraded": 35,
    }
    text = markdown({**RUN, "by_type": {**RUN["by_type"], "degrade": drill}})
    assert "1 of 1 degraded versions rolled back" in text
    assert "after 42 frames of media (1400.0 ms)" in text and "35 frames served" in text
