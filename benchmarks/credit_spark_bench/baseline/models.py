"""The scikit-learn counterpart of :mod:`credit_spark.ml.models` and :mod:`credit_spark.ml.metrics`:
median imputation, one-hot encoding, scaling and the classifier with the configured (untuned)
settings, and accuracy, macro-F1 and AUC on the test split. How they differ from MLlib's (solver
tolerances, the forest's thresholds, the exact median, ...) is listed in
:mod:`credit_spark_bench.baseline`.
"""
from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import pandas as pd

from credit_spark.config.loader import DatasetSpec, TrainSettings
from credit_spark.errors import NoRecordsError
from credit_spark.transforms.features import LABEL, categorical_features, numeric_features

ALGORITHMS = ("logistic_regression", "random_forest")
MISSING_CATEGORY = "__missing__"
#: BLAS threads while fitting. The logistic regression's matrices are ~100 columns wide, too
#: small for threaded BLAS to pay; and OpenBLAS threads spin-wait, so with another busy process on
#: the machine its 2-thread fit took 40-60 s instead of 2 s (measured on 2 cores, 60k rows).
#: The random forest's parallelism (``n_jobs=-1``) is unaffected.
BLAS_THREADS = 1


def _fill_missing_category(x):
    """Missing categories as their own level (module-level so a fitted pipeline pickles)."""
    frame = pd.DataFrame(x).astype(object)
    return frame.where(frame.notna(), MISSING_CATEGORY)


def preprocessing(spec: DatasetSpec, scale: bool):
    """``models.preprocessing_stages`` in scikit-learn: median imputation (an all-null column
    gets 0.0, MedianImputer's fallback), one-hot categories, and for linear models scaling to
    unit variance without centring (MLlib's ``StandardScaler(withMean=False)``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    parts = [("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric_features(spec))]
    categorical = categorical_features(spec)
    if categorical:
        parts.append(("categorical", Pipeline([
            ("missing", FunctionTransformer(_fill_missing_category, feature_names_out="one-to-one")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]), categorical))
    steps = [("columns", ColumnTransformer(parts, remainder="drop"))]
    if scale:
        steps.append(("scale", StandardScaler(with_mean=False)))
    return steps


def classifier(algorithm: str, settings: TrainSettings, n_train: int):
    """The scikit-learn counterpart of ``models.classifier`` with the configured settings.

    MLlib's logistic regression minimises mean (weighted) log-loss + ``reg_param`` x penalty;
    scikit-learn minimises C x summed log-loss + penalty, so ``C = 1 / (reg_param * n_train)``
    (balanced class weights sum to ``n_train``). Multinomial for more than two classes is
    scikit-learn's default with lbfgs.
    """
    balanced = "balanced" if settings.class_weight == "balanced" else None
    if algorithm == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        s = settings.logistic_regression
        c = 1.0 / (s.reg_param * n_train) if s.reg_param > 0 else float("inf")
        if s.elastic_net_param > 0:
            # an L1 share needs saga; before scikit-learn 1.8 the penalty must be named
            extra = {"solver": "saga", "l1_ratio": s.elastic_net_param}
            if _penalty_required():
                extra["penalty"] = "elasticnet"
            return LogisticRegression(C=c, max_iter=s.max_iter, class_weight=balanced, **extra)
        return LogisticRegression(C=c, max_iter=s.max_iter, class_weight=balanced, solver="lbfgs")
    if algorithm == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        s = settings.random_forest
        return RandomForestClassifier(n_estimators=s.num_trees, max_depth=s.max_depth,
                                      min_samples_leaf=s.min_instances_per_node, max_features="sqrt",
                                      class_weight=balanced, n_jobs=-1, random_state=s.seed)
    raise ValueError(f"the baseline has no {algorithm!r}; choose from {list(ALGORITHMS)}")


def _penalty_required() -> bool:
    import inspect

    from sklearn.linear_model import LogisticRegression
    return inspect.signature(LogisticRegression).parameters["penalty"].default != "deprecated"


def label_index(labels: pd.Series, spec: DatasetSpec) -> np.ndarray:
    """Label text -> 0-based index in the spec's class order (``train.with_label_index``)."""
    mapping = {c: i for i, c in enumerate(spec.label.classes)}
    return labels.map(mapping).to_numpy(dtype=int)


def fit_models(train: pd.DataFrame, spec: DatasetSpec, settings: TrainSettings,
               algorithms: Iterable[str] = ALGORITHMS) -> dict:
    """One fitted scikit-learn ``Pipeline`` per algorithm, trained on the labelled rows of ``train``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits   # a scikit-learn dependency

    labelled = train[train[LABEL].notna()]
    if labelled.empty:
        raise NoRecordsError("the training split has no labelled rows")
    y = label_index(labelled[LABEL], spec)
    models = {}
    for algorithm in algorithms:
        pipeline = Pipeline([*preprocessing(spec, scale=algorithm == "logistic_regression"),
                             ("model", classifier(algorithm, settings, len(labelled)))])
        with warnings.catch_warnings(), threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)   # MLlib also stops at max_iter silently
            pipeline.fit(labelled, y)
        models[algorithm] = pipeline
    return models


def evaluate(models: dict, test: pd.DataFrame, spec: DatasetSpec) -> dict[str, dict[str, float]]:
    """Accuracy, macro-F1 and AUC on the labelled test rows, per model.

    ``auc`` is the one-vs-rest AUC of the adverse (last) class; ``auc_mean_ovr`` is the mean of
    every class's one-vs-rest AUC, which is what ``credit_spark.ml.metrics`` reports as ``auc`` for
    more than two classes (for two classes both are the adverse class's AUC).
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    labelled = test[test[LABEL].notna()]
    if labelled.empty:
        raise NoRecordsError("the test split has no labelled rows")
    k = len(spec.label.classes)
    y = label_index(labelled[LABEL], spec)
    out = {}
    for name, model in models.items():
        proba = np.zeros((len(labelled), k))
        proba[:, model.classes_] = model.predict_proba(labelled)
        predicted = proba.argmax(axis=1)

        def auc(c: int) -> float:
            truth = y == c
            return float(roc_auc_score(truth, proba[:, c])) if 0 < truth.sum() < len(y) else float("nan")

        aucs = [auc(c) for c in range(k)]
        out[name] = {"accuracy": float(accuracy_score(y, predicted)),
                     "macro_f1": float(f1_score(y, predicted, labels=list(range(k)), average="macro",
                                                zero_division=0)),
                     "auc": aucs[-1],
                     "auc_mean_ovr": aucs[-1] if k == 2 else float(np.mean(aucs)),
                     "test_rows": int(len(labelled))}
    return out
