#!/usr/bin/env python
"""Run credit_spark's network training and inference functions on CUDA (CPU when there is no GPU).

No Spark, no Java: this calls :func:`credit_spark.torch_net.fit` (the training body both Spark
launchers run) and :func:`credit_spark.torch_net.predict_proba` (what the scoring UDF runs) on
generated tensors shaped like the credit-score features (75 standardised numeric inputs, 4
categorical columns, 3 classes), and prints samples/second and the final loss as JSON.

    python scripts/nn_gpu_check.py                   # 200,000 rows, 5 epochs
    python scripts/nn_gpu_check.py --rows 1000000 --epochs 3 --batch-size 4096
    python scripts/nn_gpu_check.py --cpu             # force the CPU (for a comparison)

Needs only numpy and torch; run it from the repository root (or with credit_spark installed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # credit_spark from the source tree

from credit_spark.torch_net import Arrays, Comm, FitParams, NetSpec, build_net, fit, load_state, predict_proba  # noqa: E402

NUMERIC, CARDINALITIES, CLASSES = 75, [17, 5, 4, 11], 3


def generated(rows: int, seed: int) -> Arrays:
    """Inputs with a learnable three-class signal (so the loss has somewhere to go)."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, NUMERIC)).astype(np.float32)
    categorical = np.stack([rng.integers(0, c, rows) for c in CARDINALITIES], axis=1).astype(np.int64)
    signal = numeric[:, :5].sum(axis=1) / 2 + (categorical[:, 0] % 3 == 0) + rng.normal(scale=0.5, size=rows)
    label = np.digitize(signal, [-0.7, 0.7]).astype(np.int64)
    return Arrays(numeric, categorical, label, np.ones(rows, np.float32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--cpu", action="store_true", help="do not use a GPU even if there is one")
    args = parser.parse_args(argv)

    import torch

    use_gpu = torch.cuda.is_available() and not args.cpu
    train, validation = generated(args.rows, seed=1), generated(max(args.rows // 5, 1000), seed=2)
    spec = NetSpec(num_numeric=NUMERIC, cardinalities=CARDINALITIES, num_classes=CLASSES, hidden_layers=[256, 128])
    params = FitParams(batch_size=args.batch_size, max_epochs=args.epochs, patience=args.epochs, use_gpu=use_gpu,
                       threads=torch.get_num_threads())
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
        "train_samples_per_second": round(result["samples_per_second"], 1),
        "train_seconds": round(train_seconds, 2),
        "first_train_loss": round(result["history"][0]["train_loss"], 4),
        "final_train_loss": round(result["history"][-1]["train_loss"], 4),
        "final_validation_loss": round(result["history"][-1]["validation_loss"], 4),
        "validation_accuracy": round(accuracy, 4),
        "inference_rows_per_second": round(len(probs) / infer_seconds, 1),
    }
    print(json.dumps(report, indent=2))
    ok = report["final_train_loss"] < report["first_train_loss"] and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
