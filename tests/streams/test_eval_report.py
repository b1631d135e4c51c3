"""The evaluation report: Markdown tables and the trade-off plot from a scored report."""

from __future__ import annotations

from streams.eval_cli import markdown, plot_tradeoff
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
    png = tmp_path / "tradeoff.png"
    plot_tradeoff(report, png)
    assert png.read_bytes().startswith(b"\x89PNG")
