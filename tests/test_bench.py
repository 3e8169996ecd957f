"""The benchmark's arithmetic (scaling exponents, speed ratios) by hand, its outputs, and a tiny real run."""
from __future__ import annotations

import json
import math

import pytest

from credit_spark_bench.bench import comparisons, scaling_exponents, stage_record, to_markdown, write_outputs


def _result(rows: int, spark_seconds: dict[str, float], baseline_seconds: dict[str, float]) -> dict:
    return {"rows": rows,
            "credit_spark": {s: stage_record(rows, t) for s, t in spark_seconds.items()},
            "baseline": {s: stage_record(rows, t) for s, t in baseline_seconds.items()},
            "quality": {"credit_spark": {"random_forest": {"macro_f1": 0.77, "auc": 0.9}},
                        "baseline": {"random_forest": {"macro_f1": 0.76, "auc": 0.89}}}}


def test_scaling_exponent_by_hand():
    small = _result(1000, {"features": 2.0, "train": 10.0}, {})
    large = _result(10000, {"features": 20.0, "train": 31.6227766}, {})
    k = scaling_exponents([small, large], "credit_spark")
    assert k["features"]["1000->10000"] == pytest.approx(1.0)        # 10x rows, 10x time
    assert k["train"]["1000->10000"] == pytest.approx(0.5, abs=1e-3)  # 10x rows, sqrt(10)x time


def test_a_stage_timed_at_zero_seconds_has_no_exponent():
    # The baseline's tiny stages round to 0.0 s (CI failed on log(0) here).
    small = _result(1000, {"features": 0.0, "train": 1.0}, {})
    large = _result(10000, {"features": 0.5, "train": 0.0}, {})
    assert scaling_exponents([small, large], "credit_spark") == {}


def test_speed_ratio_is_time_per_row_of_comparable_work():
    result = _result(1000, {"ingest": 3.0, "features": 1.0, "train:logistic_regression": 4.0,
                            "train:random_forest": 2.0},
                     {"read": 1.0, "features": 1.0, "split": 0.5, "train:logistic_regression": 1.0,
                      "train:random_forest": 4.0})
    by_stage = {c["stage"]: c for c in comparisons(result)}
    assert by_stage["clean + features"]["time_per_row_ratio"] == pytest.approx(2.0)   # 4 s vs 2 s
    assert by_stage["train random forest"]["time_per_row_ratio"] == pytest.approx(0.5)
    e2e = by_stage["end to end (ingest, features, LR, RF)"]
    assert (e2e["credit_spark_seconds"], e2e["baseline_seconds"]) == (10.0, 7.5)


def test_outputs_json_markdown_and_chart(tmp_path):
    results = [_result(1000, {"features": 2.0}, {"features": 1.0}), _result(10000, {"features": 12.0}, {})]
    report = {"when": "2026-11-28T00:00:00+00:00", "results": results,
              "machine": {"cpus": 2, "memory_gb": 24, "platform": "linux", "python": "3.11", "spark": "4.0.1",
                          "master": "local[*]"},
              "scaling": {"credit_spark": scaling_exponents(results, "credit_spark")}}
    results[1]["baseline_run"] = {"completed": False, "error": "MemoryError", "stage": "features",
                                  "memory_cap_mb": 100}
    paths = write_outputs(report, tmp_path)
    assert json.loads(paths["json"].read_text())["results"][0]["rows"] == 1000
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = to_markdown(report)
    assert "| 1,000 | credit_spark | features | 1,000 | 2.0 | 500 |" in md
    assert "| credit_spark | features | 1000->10000 | 0.78 |" in md       # log(6)/log(10)
    assert "did not complete: MemoryError (stage features, memory cap 100 MB)" in md
    assert "| 1,000 | baseline | random_forest | 0.7600 | 0.8900 |" in md
    assert math.isclose(math.log(6) / math.log(10), 0.778, abs_tol=1e-3)


def test_spark_costs_sum_the_stages_that_ran_and_name_the_costliest():
    from credit_spark_bench.bench import summarise_stages

    metrics = {"executor_run_s": 0, "executor_cpu_s": 0, "gc_s": 0, "shuffle_read_mb": 0, "shuffle_write_mb": 0,
               "spill_mb": 0, "input_mb": 0, "output_mb": 0}
    stages = [
        {**metrics, "name": "save at a.py:1", "status": "COMPLETE", "tasks": 4, "executor_run_s": 3000,
         "executor_cpu_s": 2 * 10**9, "shuffle_write_mb": 3 * 2**20, "spill_mb": 2**20},
        {**metrics, "name": "collect at b.py:2", "status": "COMPLETE", "tasks": 2, "executor_run_s": 500,
         "gc_s": 250, "shuffle_read_mb": 3 * 2**20},
        {**metrics, "name": "collect at b.py:2", "status": "SKIPPED", "tasks": 0},   # reused shuffle output
    ]
    summary = summarise_stages(2, stages, top=1)
    assert summary == {"jobs": 2, "stages": 2, "tasks": 6, "executor_run_s": 3.5, "executor_cpu_s": 2.0, "gc_s": 0.25,
                       "shuffle_read_mb": 3.0, "shuffle_write_mb": 3.0, "spill_mb": 1.0, "input_mb": 0.0,
                       "output_mb": 0.0, "top_stages": [{"name": "save at a.py:1", "executor_run_s": 3.0}]}


@pytest.mark.e2e
def test_a_tiny_benchmark_runs_both_systems(spark, cfg, tmp_path):
    pytest.importorskip("sklearn", reason="the baseline needs scikit-learn (scripts/setup.sh bench)")
    from credit_spark.ml.neural import torch_available
    from credit_spark_bench.bench import run_benchmark

    report = run_benchmark(spark, cfg, [1600, 3200], tmp_path / "work", ["generate", "ingest", "features", "nn"])
    first, second = report["results"]
    network = {"nn:epoch x1", "nn:epoch x2", "nn:score"} if torch_available() else set()
    assert set(first["credit_spark"]) == {"generate", "ingest", "features"} | network
    if network:
        assert first["credit_spark"]["nn:epoch x2"]["rows"] == 1600            # every labelled row, once
        assert first["credit_spark"]["nn:score"]["rows"] == 1800
    assert first["credit_spark"]["features"]["rows"] == 1600 + 200        # history + one night
    # Spark's own account of each stage: its jobs, tasks and executor time
    costs = first["credit_spark"]["features"]["spark"]
    assert costs["jobs"] >= 1 and costs["tasks"] >= 1 and costs["executor_run_s"] > 0 and costs["top_stages"]
    assert first["credit_spark"]["ingest"]["spark"]["output_mb"] > 0         # the Delta writes
    assert "Where credit_spark's time goes" in to_markdown(report)
    assert first["baseline_run"]["completed"], first["baseline_run"]
    assert {"read", "features", "split", "train:logistic_regression", "train:random_forest"} <= set(first["baseline"])
    assert second["baseline"]["features"]["rows"] == 3200
    assert {"generate", "ingest", "features"} <= set(report["scaling"]["credit_spark"])
    assert report["baseline_largest_completed"] == 3200
    assert report["results"][0]["quality"]["baseline"]["random_forest"]["macro_f1"] > 0.4
    assert not (tmp_path / "work" / "rows_1600").exists()                  # scratch removed per size


def _scale_report(cores: int, seconds_by_rows: dict[int, dict[str, float]]) -> dict:
    return {"when": "2026-12-07T00:00:00+00:00",
            "machine": {"cpus": 2, "memory_gb": 24.0, "spark": "4.0.1", "master": f"local[{cores}]"},
            "results": [{"rows": rows, "credit_spark": {**{s: stage_record(rows, t) for s, t in stages.items()},
                                                        "train:random_forest": stage_record(rows, 1.0)}}
                        for rows, stages in seconds_by_rows.items()]}


def test_scale_out_recovers_fixed_serial_and_parallel_costs():
    """Timings made from a known model: 5 s fixed, 10 µs/row serial, 200 core-µs/row parallel."""
    from credit_spark_bench.scale_out import PROJECT_CORES, PROJECT_ROWS, predict, scale_out, to_markdown as scale_md

    truth = {"fixed_s": 5.0, "serial_s_per_row": 1e-5, "parallel_s_per_row": 2e-4}
    reports = {c: _scale_report(c, {r: {"features": predict(truth, r, c), "ingest": 3.0 + 1e-4 * r}
                                    for r in (100_000, 300_000)}) for c in (1, 2)}
    result = scale_out(reports)
    features = result["stages"]["features"]
    assert features["model"] == pytest.approx(truth, rel=1e-6)
    small = features["sizes"][0]
    assert small["seconds"] == {"1": 26.0, "2": 16.0}
    assert small["speedup"]["2"] == pytest.approx(26 / 16, abs=1e-3)
    assert small["efficiency"]["2"] == pytest.approx(26 / 32, abs=1e-3)
    assert small["core_s_per_row"]["2"] == pytest.approx(32 / 100_000)
    assert features["projection_s"][f"{PROJECT_ROWS[0]}x{PROJECT_CORES[0]}"] == pytest.approx(5 + 100 + 250, abs=0.1)
    # a stage that did not speed up at all: no parallel part, and no negative cost fitted
    ingest = result["stages"]["ingest"]["model"]
    assert ingest["parallel_s_per_row"] == 0 and ingest["serial_s_per_row"] == pytest.approx(1e-4)
    assert result["stages"]["ingest"]["sizes"][0]["efficiency"]["2"] == pytest.approx(0.5)
    assert "train:random_forest" not in result["stages"]           # inside `train`, not a stage of its own
    md = scale_md(result)
    assert "| features | 100,000 | 26.0 | 16.0 | 1.625 | 0.812 | 260 → 320 |" in md


def test_scale_out_needs_two_sizes_and_two_core_counts():
    from credit_spark_bench.scale_out import fit_model, main

    assert fit_model([(100, 1, 2.0), (100, 2, 1.0)]) is None
    with pytest.raises(SystemExit):
        main(["--cores", "2", "--sizes", "1000,2000"])
    with pytest.raises(SystemExit):      # fails before any run: score reads the champion train registers
        main(["--cores", "1,2", "--sizes", "1000,2000", "--stages", "generate,ingest,features,score"])


@pytest.mark.e2e
def test_storage_per_run_measures_each_night_and_maintain(spark, cfg, tmp_path):
    """Two nights after a first month, point-in-time repair: each night writes one month and
    leaves no rewritten copy behind; the table reads the same after maintain."""
    from credit_spark_bench.storage import measure_variant, to_markdown as storage_markdown

    variant = measure_variant(spark, cfg, "past_periods", customers=20, runs=2, seed=1, work=tmp_path)
    runs = variant["runs"]
    assert [(r["month"], r["mode"], r["rows_written"]) for r in runs] == [
        (1, "full", 20), (2, "incremental", 20), (3, "incremental", 20)]
    assert all(r["features_folder_mb"] == r["features_current_mb"] > 0 for r in runs)
    assert runs[2]["features_current_mb"] > runs[1]["features_current_mb"] > runs[0]["features_current_mb"]
    assert variant["after_maintain_retention_0"]["features_folder_mb"] == pytest.approx(
        runs[-1]["features_current_mb"], rel=0.5)
    text = storage_markdown({"customers": 20, "runs": 2, "variants": {"point-in-time": variant}})
    assert "| 2 | 3 | incremental | 20 |" in text
    with pytest.raises(ValueError, match="runs: 1..11"):
        measure_variant(spark, cfg, "past_periods", customers=20, runs=12, seed=1, work=tmp_path)
