"""``secmlops eval``: measure what the security measures catch, on any video (docs/eval.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from streams.cli_support import cli_settings

__all__ = ["evaluate", "markdown"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def markdown(report: dict[str, Any], plots: dict[str, Path] | None = None) -> str:
    """The report as Markdown: totals, one row per injection type, the sweep, the plots.

    ``plots`` maps a caption to a PNG path as the report should link it.
    """
    src = report.get("source", {})
    lines = [
        f"# Evaluation: {src.get('path', '?')} with {src.get('schedule', '?')}",
        "",
        f"Monitors: {', '.join(report.get('monitors', []))}",
        "",
        "| frames | lost | trusted | quarantined | dead-lettered | clean FPR | "
        "quarantine precision | quarantine recall |",
        "|---|---|---|---|---|---|---|---|",
        f"| {report['frames']} | {report['lost_frames']} | {report['outcomes']['trusted']} | "
        f"{report['outcomes']['quarantined']} | {report['outcomes']['deadletter']} | "
        f"{_pct(report['clean']['false_positive_rate'])} | "
        f"{_pct(report['quarantine']['precision'])} | {_pct(report['quarantine']['recall'])} |",
        "",
        "| injection | family | frames | detection rate | FPR (its family) | median delay |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in report["by_type"].items():
        delay = row["median_delay_frames"]
        delay_text = "–" if delay is None else f"{delay:g} frames ({row['median_delay_ms']} ms)"
        lines.append(
            f"| {kind} | {row['family']} | {row['frames']} | {_pct(row['detection_rate'])} | "
            f"{_pct(row['false_positive_rate'])} | {delay_text} |"
        )
    for kind, row in report["by_type"].items():
        if row["family"] == "model":
            delay = row["median_delay_frames"]
            lines += [
                "",
                f"Model drill `{kind}`: {row['stretches'] - row['undetected_stretches']} of "
                f"{row['stretches']} degraded versions rolled back within their range"
                + (
                    ""
                    if delay is None
                    else f", after {delay:g} frames of media ({row['median_delay_ms']} ms) (median)"
                )
                + f"; {row['served_by_degraded']} frames served by a degraded version.",
            ]
    lost = report.get("pedestrians_lost")
    if lost:
        lines += [
            "",
            f"Adversarial frames the gate trusted: {lost['attacked_frames_trusted']}; on them "
            f"the model found {lost['attacked']} pedestrians where the clean frames show "
            f"{lost['clean']} ({lost['lost']} lost to attacks that got through).",
        ]
    if report.get("sweep"):
        lines += [
            "",
            "Each security measure alone, and all of them (the same replay, one after the other):",
            "",
            "| monitors | detection rate | clean FPR | frames/s | vs none |",
            "|---|---|---|---|---|",
        ]
        for name, row in report["sweep"].items():
            ratio = row["throughput_vs_none"]
            lines.append(
                f"| {name} | {_pct(row['detection_rate'])} | {_pct(row['false_positive_rate'])} "
                f"| {row['throughput_fps']} | {'–' if ratio is None else f'{ratio:.2f}'} |"
            )
    if report.get("throughput_fps") is not None:
        lat = report["latency_ms"]
        lines += [
            "",
            f"Throughput {report['throughput_fps']} frames/s; capture→outcome latency "
            f"p50 {lat['p50']} ms, p99 {lat['p99']} ms.",
        ]
    for caption, path in (plots or {}).items():
        lines += ["", f"![{caption}]({path.as_posix()})"]
    return "\n".join(lines) + "\n"


@click.command("eval")
@click.option("--source", required=True, help="A video, an image folder, or asset:NAME.")
@click.option(
    "--schedule",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Injection schedule (YAML); see docs/replay.md and examples/schedules/drill.yaml.",
)
@click.option("--camera", default="eval", show_default=True, help="Camera id to stream as.")
@click.option("--monitors", help="SECMLOPS_MONITORS for this run (default: the setting).")
@click.option(
    "--calibrate",
    type=click.IntRange(0),
    default=0,
    help="Calibrate the monitors on the first N frames, then replay from frame N.",
)
@click.option("--start", type=click.IntRange(0), default=0, help="First frame to replay.")
@click.option("--end", type=click.IntRange(1), default=None, help="Stop before this frame.")
@click.option("--resize", help="WIDTHxHEIGHT, as the cameras would send.")
@click.option("--real-time", is_flag=True, help="Pace at the source's frame rate (default: fast).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the report here.")
@click.option("--report", "md_out", type=click.Path(path_type=Path), help="Markdown report here.")
@click.option(
    "--sweep",
    is_flag=True,
    help="Also replay with no monitor and with each monitor alone (the trade-off).",
)
@click.option(
    "--plots",
    "plot_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write PNG plots here: per injection type, and with --sweep the trade-off curve.",
)
def evaluate(
    source: str,
    schedule: Path,
    camera: str,
    monitors: str | None,
    calibrate: int,
    start: int,
    end: int | None,
    resize: str | None,
    real_time: bool,
    json_out: Path | None,
    md_out: Path | None,
    sweep: bool,
    plot_dir: Path | None,
) -> None:
    """Replay SOURCE with the schedule's injections through the whole pipeline and score it.

    Every delivered frame's terminal outcome (trusted, quarantined, dead-lettered)
    is compared with the drill's truth: per injection type the detection rate, the
    false-positive rate on clean frames, the detection delay; quarantine precision
    and recall; lost frames; throughput and latency.  The Markdown report goes to
    stdout (or --report), the JSON (a stable interface, docs/eval.md) to --json.

    \b
    Examples:
      secmlops eval --source asset:sample-drive --schedule examples/schedules/drill.yaml \\
          --calibrate 300 --json eval.json
      secmlops eval --source front.mp4 --schedule my-drill.yaml --monitors integrity
      secmlops eval --source asset:sample-drive --schedule examples/schedules/drill.yaml \
          --calibrate 300 --sweep --plots eval-plots --report eval.md
    """
    import os

    from producers.cli import _resolve, _size
    from producers.injection import SpecError
    from streams.eval_plots import write_plots
    from streams.eval_run import run_eval

    if monitors:
        os.environ["SECMLOPS_MONITORS"] = monitors  # the worker inherits it
    settings = cli_settings()
    try:
        path = _resolve(source, settings)
        report = run_eval(
            settings,
            path,
            schedule,
            camera=camera,
            calibrate=calibrate,
            start=start,
            end=end,
            resize=_size(None, None, resize),
            fast=not real_time,
            sweep=sweep,
        )
    except (SpecError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if json_out:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    plots = write_plots(report, plot_dir) if plot_dir is not None else {}
    if md_out is not None:  # links relative to the report
        plots = {c: Path(os.path.relpath(p, md_out.resolve().parent)) for c, p in plots.items()}
    text = markdown(report, plots)
    if md_out:
        md_out.write_text(text)
    click.echo(text)
    if report["lost_frames"]:
        raise SystemExit(1)
