"""``secmlops eval`` on the real stack: a short drill, scored, with the documented JSON keys."""

from __future__ import annotations

import json

from tests.integration.conftest import secmlops

SCHEDULE = """
injections:
  - {type: unsigned, frames: [1265, 1267]}
  - {type: replay, frames: [1290, 1291], params: {lag: 10}}
  - {type: pgd, frames: [1300, 1302], params: {eps: 8/255, steps: 5}}
"""


def test_eval_scores_a_drill_through_the_whole_pipeline(stack, env, tmp_path):
    schedule = tmp_path / "drill.yaml"
    schedule.write_text(SCHEDULE)
    out = tmp_path / "eval.json"
    run = secmlops(
        env,
        "eval",
        "--source",
        "asset:sample-drive",
        "--schedule",
        str(schedule),
        "--start",
        "1260",
        "--end",
        "1310",
        "--resize",
        "320x180",
        "--json",
        str(out),
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["frames"] == 50  # 49 delivered by the drill, plus the replayed copy
    assert report["lost_frames"] == 0
    assert set(report["by_type"]) == {"unsigned", "replay", "pgd"}
    for kind in ("unsigned", "replay"):
        assert report["by_type"][kind]["detection_rate"] == 1.0, report["by_type"][kind]
    assert report["by_type"]["pgd"]["frames"] == 2
    assert 0.0 <= report["clean"]["false_positive_rate"] <= 1.0
    assert (
        report["throughput_fps"] > 0 and report["latency_ms"]["p99"] >= report["latency_ms"]["p50"]
    )
    assert "| unsigned | integrity | 2 | 100.0 % |" in run.stdout


def test_eval_explains_a_bad_schedule(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("injections:\n  - {type: teleport, frames: [0, 5]}\n")
    run = secmlops(
        env, "eval", "--source", "asset:sample-drive", "--schedule", str(bad), check=False
    )
    assert run.returncode == 1 and "teleport" in run.stderr
