"""Write tests/fixtures/saved_models: small models saved by the code of the checkout that runs
this, with input rows and the outputs those models gave, so a later release proves that models
saved before it (stage classes are saved by their Python class path) still load and score
identically (tests/test_saved_models.py).

Run it from a checkout of the release whose models must keep loading, e.g.:

    git worktree add /tmp/old <commit> && ln -s /tmp/old/conf /tmp/old/credit_spark/conf
    PYTHONPATH=/tmp/old .venv/bin/python /tmp/old/scripts/make_model_fixture.py tests/fixtures/saved_models

It trains every algorithm of the default flow (logistic regression, random forest, XGBoost,
scorecard, the network, their stacked ensemble) on 800 generated records, small and fast.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

OVERLAY = {
    "spark": {"master": "local[2]", "log_level": "ERROR",
              "conf": {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false",
                       "spark.sql.session.timeZone": "UTC"}},
    "train": {
        "algorithms": ["logistic_regression", "random_forest", "xgboost", "scorecard", "neural_network"],
        "selection": {"method": "holdout"}, "tuning": {"method": "none"},
        "comparison": {"bootstrap_samples": 100},
        "random_forest": {"num_trees": 5, "max_depth": 4},
        "xgboost": {"n_estimators": 20, "learning_rate": 0.3},
        "neural_network": {"hidden_layers": [16], "ensemble_size": 2, "max_epochs": 2, "num_processes": 1},
    },
}
ROWS = 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out.resolve()

    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from credit_spark.config.loader import load_config
    from credit_spark.jobs.generate import generate_records
    from credit_spark.jobs.scoring import with_coded_reasons
    from credit_spark.jobs.train import train
    from credit_spark.lake.session import get_spark
    from credit_spark.lake.tables import FEATURES, overwrite_table
    from credit_spark.tracking import registry
    from credit_spark.transforms.features import build_features

    work = Path(tempfile.mkdtemp(prefix="model_fixture_"))
    overlay = work / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    cfg = load_config([str(overlay)], lake=str(work / "lake"))
    spark = get_spark(cfg.spark)
    features = build_features(generate_records(spark, 800, seed=5), cfg.spec)
    overwrite_table(features, cfg.table_path(FEATURES), partition_by=["period"])
    result = train(spark, cfg)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = (spark.read.format("delta").load(cfg.table_path(FEATURES))
            .orderBy("record_id").limit(ROWS).cache())
    (out / "rows.schema.json").write_text(rows.schema.json())
    rows.coalesce(1).write.json(str(work / "rows"))
    shutil.copy(next((work / "rows").glob("part-*.json")), out / "rows.json")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True).stdout.strip()
    manifest = {"made_by_commit": commit, "dataset": cfg.dataset, "max_reasons": cfg.score.max_reasons,
                "models": sorted(result.versions)}
    for name in manifest["models"]:
        model = registry.load_model(cfg, registry.resolve(cfg, name))
        model.write().save(str(out / name / "model"))
        scored = with_coded_reasons(model, cfg.spec, cfg.score.max_reasons).transform(rows)
        expected = scored.select("record_id", "prediction", vector_to_array("probability").alias("probability"),
                                 F.to_json("reasons").alias("reasons")).orderBy("record_id")
        (out / name / "expected.json").write_text(json.dumps([r.asDict() for r in expected.collect()], indent=0))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}: {', '.join(manifest['models'])}")


if __name__ == "__main__":
    main()
