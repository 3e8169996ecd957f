#!/usr/bin/env python
"""Run credit_spark's network and XGBoost training and inference on CUDA (CPU when there is no GPU).

No Spark, no Java: this calls :func:`credit_spark.ml.torch_train.fit` (the training body both Spark
launchers run) and :func:`credit_spark.ml.torch_net.predict_proba` (what the scoring UDF runs) on
generated tensors shaped like the credit-score features (75 standardised numeric inputs, 4
categorical columns, 3 classes), and prints samples/second and the final loss as JSON. Then it
trains XGBoost with the settings credit_spark's `xgboost` stage passes to each Spark worker
(`device="cuda"`, hist trees, early stopping on a validation set, multi-class log-loss) on the
same arrays and times its predictions and its SHAP contributions (the reason codes' source).

    python scripts/nn_gpu_check.py                   # 200,000 rows, 5 epochs
    python scripts/nn_gpu_check.py --rows 1000000 --epochs 3 --batch-size 4096
    python scripts/nn_gpu_check.py --cpu             # force the CPU (for a comparison)

The network has the shipped config's architecture options (numeric encoding, body, ensemble size,
schedule) unless flags override them. Needs only numpy, PyYAML, torch and xgboost; run it from the repository root (or with credit_spark installed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # credit_spark from the source tree

from credit_spark.ml.torch_net import (Arrays, FitParams, NetSpec, build_net, load_state, predict_proba,  # noqa: E402
                                    quantile_edges)
from credit_spark.ml.torch_train import Comm, fit  # noqa: E402

NUMERIC, CARDINALITIES, CLASSES = 75, [17, 5, 4, 11], 3


def generated(rows: int, seed: int) -> Arrays:
    """Inputs with a learnable three-class signal (so the loss has somewhere to go)."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, NUMERIC)).astype(np.float32)
    categorical = np.stack([rng.integers(0, c, rows) for c in CARDINALITIES], axis=1).astype(np.int64)
    signal = numeric[:, :5].sum(axis=1) / 2 + (categorical[:, 0] % 3 == 0) + rng.normal(scale=0.5, size=rows)
    label = np.digitize(signal, [-0.7, 0.7]).astype(np.int64)
    return Arrays(numeric, categorical, label, np.ones(rows, np.float32))


def shipped_network_settings() -> dict:
    """``train.neural_network`` of conf/base.yaml, read as plain YAML (no Spark, no config model)."""
    import yaml

    base = Path(__file__).resolve().parents[1] / "conf" / "base.yaml"
    return (yaml.safe_load(base.read_text()).get("train", {}) or {}).get("neural_network", {}) or {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--cpu", action="store_true", help="do not use a GPU even if there is one")
    parser.add_argument("--skip-xgboost", action="store_true", help="check the network only")
    parser.add_argument("--architecture", choices=["mlp", "resnet"], default=None,
                        help="default: the shipped config's train.neural_network.architecture")
    parser.add_argument("--numeric-encoding", choices=["standard", "piecewise_linear", "quantile"], default=None,
                        help="default: the shipped config's")
    parser.add_argument("--ensemble-size", type=int, default=None, help="default: the shipped config's")
    args = parser.parse_args(argv)

    import torch

    use_gpu = torch.cuda.is_available() and not args.cpu
    train, validation = generated(args.rows, seed=1), generated(max(args.rows // 5, 1000), seed=2)
    shipped = shipped_network_settings()
    encoding = args.numeric_encoding or shipped.get("numeric_encoding", "standard")
    bins = int(shipped.get("num_bins", 16))
    sample = train.numeric[:100_000]     # the Spark stage takes the edges from the training rows likewise
    edges = ([quantile_edges(np.quantile(sample[:, i], np.linspace(0, 1, bins + 1)).tolist()) for i in range(NUMERIC)]
             if encoding != "standard" else [])
    spec = NetSpec(num_numeric=NUMERIC, cardinalities=CARDINALITIES, num_classes=CLASSES, hidden_layers=[256, 128],
                   architecture=args.architecture or shipped.get("architecture", "mlp"), numeric_encoding=encoding,
                   bin_edges=edges, ensemble_size=args.ensemble_size or int(shipped.get("ensemble_size", 1)),
                   dropout=float(shipped.get("dropout", 0.2)))
    params = FitParams(batch_size=args.batch_size, max_epochs=args.epochs, patience=args.epochs, use_gpu=use_gpu,
                       threads=torch.get_num_threads(), lr_schedule=shipped.get("lr_schedule", "constant"),
                       weight_decay=float(shipped.get("weight_decay", 1e-5)))
    started = time.perf_counter()
    result = fit(Comm(), train, validation, spec, params)
    train_seconds = time.perf_counter() - started

    model = build_net(spec)
    model.load_state_dict(load_state(result["state"]))
    model.to(torch.device("cuda") if use_gpu else torch.device("cpu")).eval()
    predict_proba(model, validation.numeric[:1000], validation.categorical[:1000])    # warm-up
    if use_gpu:
        torch.cuda.synchronize()
    started = time.perf_counter()
    probs = predict_proba(model, validation.numeric, validation.categorical)
    infer_seconds = time.perf_counter() - started
    accuracy = float((probs.argmax(axis=1) == validation.label).mean())

    report = {
        "device": result["device"],
        "gpu": torch.cuda.get_device_name(0) if use_gpu else None,
        "torch": torch.__version__,
        "rows": args.rows, "epochs": result["epochs"], "batch_size": args.batch_size,
        "network": {"architecture": spec.architecture, "numeric_encoding": spec.numeric_encoding,
                    "ensemble_size": spec.ensemble_size},
        "train_samples_per_second": round(result["samples_per_second"], 1),
        "train_seconds": round(train_seconds, 2),
        "first_train_loss": round(result["history"][0]["train_loss"], 4),
        "final_train_loss": round(result["history"][-1]["train_loss"], 4),
        "final_validation_loss": round(result["history"][-1]["validation_loss"], 4),
        "validation_accuracy": round(accuracy, 4),
        "inference_rows_per_second": round(len(probs) / infer_seconds, 1),
    }
    ok = report["final_train_loss"] < report["first_train_loss"] and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    if not args.skip_xgboost:
        report["xgboost"] = xgboost_check(train, validation, use_gpu)
        ok = ok and report["xgboost"]["validation_accuracy"] > 0.5
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


def xgboost_check(train: Arrays, validation: Arrays, use_gpu: bool) -> dict:
    """XGBoost as credit_spark's xgboost stage trains it on one worker: hist trees, early stopping."""
    import xgboost as xgb

    def matrix(a: Arrays) -> np.ndarray:
        return np.hstack([a.numeric, a.categorical.astype(np.float32)])

    model = xgb.XGBClassifier(device="cuda" if use_gpu else "cpu", tree_method="hist", n_estimators=400,
                              learning_rate=0.1, max_depth=5, early_stopping_rounds=20, eval_metric="mlogloss")
    started = time.perf_counter()
    model.fit(matrix(train), train.label, eval_set=[(matrix(validation), validation.label)], verbose=False)
    train_seconds = time.perf_counter() - started
    x = matrix(validation)
    started = time.perf_counter()
    probs = model.predict_proba(x)
    predict_seconds = time.perf_counter() - started
    started = time.perf_counter()
    contributions = model.get_booster().predict(xgb.DMatrix(x), pred_contribs=True, strict_shape=True,
                                                iteration_range=(0, model.best_iteration + 1))
    shap_seconds = time.perf_counter() - started
    # SHAP values add up to the margin: their sum per class is the raw score
    margins = model.get_booster().predict(xgb.DMatrix(x), output_margin=True, strict_shape=True,
                                          iteration_range=(0, model.best_iteration + 1))
    return {"device": "cuda" if use_gpu else "cpu", "xgboost": xgb.__version__,
            "best_rounds": model.best_iteration + 1, "train_seconds": round(train_seconds, 2),
            "validation_accuracy": round(float((probs.argmax(axis=1) == validation.label).mean()), 4),
            "predict_rows_per_second": round(len(x) / predict_seconds, 1),
            "shap_rows_per_second": round(len(x) / shap_seconds, 1),
            "shap_sums_to_margin": bool(np.allclose(contributions.sum(axis=2), margins, atol=1e-3))}


if __name__ == "__main__":
    sys.exit(main())
