"""The neural network: the torch body alone, then both Spark launchers with two processes in local[2]."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import functions as F

torch = pytest.importorskip("torch", reason="the neural-network extra is not installed (scripts/setup.sh nn)")

from credit_spark.errors import ConfigError  # noqa: E402
from credit_spark.ml.neural import TorchClassifier, TorchClassifierModel, require_backend  # noqa: E402
from credit_spark.ml.torch_net import (Arrays, FitParams, NetSpec, auto_batch_size, build_net, load_state,  # noqa: E402
                                    members, predict_proba, quantile_edges)
from credit_spark.ml.torch_train import Comm, fit, learning_rate_schedule, result_from_json, result_to_json  # noqa: E402

NUMERIC, CLASSES = 6, 3


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three classes driven by two numeric inputs and one category (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, NUMERIC)).astype(np.float32)
    cats = np.stack([rng.integers(0, 5, n), rng.integers(0, 3, n)], axis=1)
    signal = x[:, 0] + 0.8 * x[:, 1] + 0.7 * (cats[:, 0] == 2) + rng.normal(scale=0.4, size=n)
    y = np.digitize(signal, [-0.6, 0.6]).astype(np.int64)
    return x, cats, y


def as_frame(spark, n: int, seed: int, validation_share: float = 0.0):
    x, cats, y = synthetic(n, seed)
    rows = [(i, x[i].tolist(), int(cats[i, 0]), int(cats[i, 1]), float(y[i]), 1.0 + float(y[i] == 2),
             bool(i < validation_share * n)) for i in range(n)]
    df = spark.createDataFrame(rows, "id long, x array<float>, c0 int, c1 int, label double, w double, "
                                     "is_val boolean")
    return df.withColumn("features", array_to_vector("x")).drop("x")


def estimator(tmp_path, backend: str, **overrides) -> TorchClassifier:
    params = dict(featuresCol="features", categoricalCols=["c0", "c1"], labelCol="label", weightCol="w",
                  numClasses=CLASSES, hiddenLayers=[32, 16], batchSize=128, maxEpochs=6, patience=3,
                  backend=backend, numProcesses=2, localMode=False, useGpu="false",
                  stagingDir=str(tmp_path / "staging"), checkpointDir=str(tmp_path / "checkpoints"))
    params.update(overrides)
    return TorchClassifier(**params)


# --------------------------------------------------------------------------- torch alone
def test_fit_lowers_the_loss_and_predicts_probabilities():
    x, cats, y = synthetic(3000, seed=1)
    train = Arrays(x[:2400], cats[:2400], y[:2400], np.ones(2400, np.float32))
    valid = Arrays(x[2400:], cats[2400:], y[2400:], np.ones(600, np.float32))
    spec = NetSpec(num_numeric=NUMERIC, cardinalities=[6, 4], num_classes=CLASSES, hidden_layers=[32, 16])
    result = fit(Comm(), train, valid, spec, FitParams(max_epochs=8, batch_size=128, patience=8))
    losses = [h["validation_loss"] for h in result["history"]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result["best_epoch"] == 1 + int(np.argmin(losses))
    net = build_net(spec)
    net.load_state_dict(load_state(result["state"]))
    net.eval()
    probs = predict_proba(net, valid.numeric, valid.categorical)
    assert probs.shape == (600, CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert (probs.argmax(axis=1) == valid.label).mean() > 0.6     # chance is about 0.33


def test_early_stopping_stops_when_the_validation_loss_stops_improving():
    x, cats, y = synthetic(1200, seed=2)
    train = Arrays(x[:1000], cats[:1000], y[:1000], np.ones(1000, np.float32))
    shuffled = np.random.default_rng(3).permutation(y[1000:])     # labels unrelated to the inputs
    valid = Arrays(x[1000:], cats[1000:], shuffled, np.ones(200, np.float32))
    spec = NetSpec(num_numeric=NUMERIC, cardinalities=[6, 4], num_classes=CLASSES, hidden_layers=[64, 64],
                   dropout=0.0)
    result = fit(Comm(), train, valid, spec, FitParams(max_epochs=40, batch_size=64, patience=2, learning_rate=0.01))
    assert result["epochs"] < 40
    assert result["epochs"] == result["best_epoch"] + 2


def test_a_rank_without_rows_is_an_error():
    empty = Arrays(np.zeros((0, 2), np.float32), np.zeros((0, 0), np.int64), np.zeros(0, np.int64),
                   np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="rank 0 of 1 received no training rows"):
        fit(Comm(), empty, None, NetSpec(2, [], 2), FitParams())


# --------------------------------------------------------------------------- architecture options
def encoded(encoding: str, edges: list[list[float]], values: list[list[float]]) -> np.ndarray:
    spec = NetSpec(num_numeric=len(edges), cardinalities=[], num_classes=2, numeric_encoding=encoding,
                   bin_edges=edges)
    with torch.no_grad():
        return build_net(spec).encoder(torch.tensor(values, dtype=torch.float32)).numpy()


def test_the_training_result_crosses_shared_storage_as_json_not_pickle():
    x, cats, y = synthetic(600, seed=4)
    train = Arrays(x, cats, y, np.ones(600, np.float32))
    spec = NetSpec(num_numeric=NUMERIC, cardinalities=[6, 4], num_classes=CLASSES, hidden_layers=[8])
    result = fit(Comm(), train, None, spec, FitParams(max_epochs=2, batch_size=128, patience=2))
    data = result_to_json(result)
    back = result_from_json(data)
    assert back == result                       # weights bytes, history, checksums: all of it
    assert load_state(back["state"]).keys() == load_state(result["state"]).keys()
    import json
    import pickle
    assert json.loads(data)["state"]            # plain JSON text on disk
    with pytest.raises(ValueError):             # a pickle planted in the staging folder is not run
        result_from_json(pickle.dumps(result))
    with pytest.raises(ValueError, match="no weights"):
        result_from_json(json.dumps({"history": []}).encode())


def test_piecewise_linear_encoding_is_linear_inside_a_bin_and_unclipped_beyond_the_outer_bins():
    # input 0: edges 0, 1, 2, 4 (three bins); input 1: edges 10, 20 (one bin; two padded, masked)
    out = encoded("piecewise_linear", [[0, 1, 2, 4], [10, 20]], [[-1, 5], [0.5, 10], [1.5, 15], [5, 25]])
    expected = [[-1, 0, 0, -0.5, 0, 0],
                [0.5, 0, 0, 0, 0, 0],
                [1, 0.5, 0, 0.5, 0, 0],
                [1, 1, 1.5, 1.5, 0, 0]]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_quantile_encoding_gives_normal_scores_of_the_training_distribution():
    edges = [quantile_edges(np.quantile(np.arange(101.0), np.linspace(0, 1, 5)).tolist())]   # 0 25 50 75 100
    out = encoded("quantile", edges, [[50.0], [25.0], [75.0], [-1e6], [1e6], [12.5]])[:, 0]
    from statistics import NormalDist
    z = NormalDist().inv_cdf
    np.testing.assert_allclose(out, [0.0, z(0.25), z(0.75), z(1e-3), z(1 - 1e-3), z(0.125)], atol=1e-5)


def test_quantile_edges_are_distinct_and_a_constant_input_gets_one_bin():
    assert quantile_edges([0.0, 0.0, 0.0, 1.0, 3.0, 3.0]) == [0.0, 1.0, 3.0]
    assert quantile_edges([2.0, 2.0]) == [1.5, 2.5]
    with pytest.raises(ValueError, match="bin edges for each of the 2 numeric inputs"):
        NetSpec(num_numeric=2, cardinalities=[], num_classes=2, numeric_encoding="quantile", bin_edges=[[0, 1]])


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities():
    spec = NetSpec(num_numeric=NUMERIC, cardinalities=[6, 4], num_classes=CLASSES, hidden_layers=[16, 16],
                   architecture="resnet", ensemble_size=3)
    net = build_net(spec).eval()
    x, cats, _ = synthetic(50, seed=9)
    nets = members(net)
    assert len(nets) == 3
    with torch.no_grad():
        each = [torch.softmax(m(torch.tensor(x), torch.tensor(cats)), dim=1).numpy() for m in nets]
    assert not np.allclose(each[0], each[1])                        # members start from other weights
    np.testing.assert_allclose(predict_proba(net, x, cats), np.mean(each, axis=0), rtol=1e-5, atol=1e-7)


def test_a_first_release_spec_builds_the_first_release_network():
    """Models saved before the architecture options keep loading: same module, same state keys."""
    spec = NetSpec.from_json('{"num_numeric": 3, "cardinalities": [5], "num_classes": 2, '
                             '"hidden_layers": [8], "dropout": 0.1, "embedding_dim": 4}')
    keys = list(build_net(spec).state_dict())
    assert keys == ["embeddings.0.weight", "mlp.0.weight", "mlp.0.bias", "mlp.1.weight", "mlp.1.bias",
                    "mlp.4.weight", "mlp.4.bias"]


def test_auto_batch_size_gives_small_data_enough_steps_and_large_data_full_batches():
    assert auto_batch_size(3749, 2) == 64        # the Kaggle sample's training customers: ~29 steps an epoch
    assert auto_batch_size(589, 2) == 64         # German credit: never below 64
    assert auto_batch_size(8000, 1) == 256
    assert auto_batch_size(10_000_000, 2) == 1024


def test_cosine_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = learning_rate_schedule(optimizer, "cosine", steps_per_epoch=10, max_epochs=10)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)       # warm-up over one epoch
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[-1] < 1e-3
    assert learning_rate_schedule(optimizer, "constant", 10, 10) is None
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        learning_rate_schedule(optimizer, "step", 10, 10)


def test_piecewise_linear_inputs_learn_a_non_monotone_effect_the_plain_mlp_misses():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3000, 2)).astype(np.float32)
    y = (np.abs(x[:, 0]) + 0.3 * rng.normal(size=3000) > 1.0).astype(np.int64)   # both tails are class 1
    cats = np.zeros((3000, 0), np.int64)
    train, valid = (Arrays(x[s], cats[s], y[s], np.ones(len(y[s]), np.float32)) for s in (slice(0, 2400),
                                                                                          slice(2400, None)))
    edges = [quantile_edges(np.quantile(x[:2400, i], np.linspace(0, 1, 9)).tolist()) for i in range(2)]
    losses = {}
    for encoding in ("standard", "piecewise_linear"):
        spec = NetSpec(num_numeric=2, cardinalities=[], num_classes=2, hidden_layers=[8], architecture="mlp",
                       numeric_encoding=encoding, bin_edges=edges if encoding != "standard" else [])
        result = fit(Comm(), train, valid, spec, FitParams(max_epochs=6, batch_size=64, patience=6))
        losses[encoding] = min(h["validation_loss"] for h in result["history"])
    # same layers, same steps: the bins make |x| a sum of linear pieces, the standardised input does not
    assert losses["piecewise_linear"] < 0.85 * losses["standard"], losses


# --------------------------------------------------------------------------- through Spark
@pytest.fixture(scope="module")
def distributor_model(spark, tmp_path_factory):
    """The network with every architecture option away from the first release's defaults."""
    tmp = tmp_path_factory.mktemp("nn_td")
    data = as_frame(spark, 3000, seed=4, validation_share=0.2)
    model = estimator(tmp, "torch_distributor", validationIndicatorCol="is_val", architecture="resnet",
                      numericEncoding="piecewise_linear", numBins=8, ensembleSize=2, lrSchedule="cosine").fit(data)
    return model, tmp


def assert_trained_in_step(info: dict, backend: str) -> None:
    assert info["backend"] == backend and info["world_size"] == 2
    assert len(info["rank_checksums"]) == 2 and len(set(info["rank_checksums"])) == 1, info["rank_checksums"]
    losses = [h["train_loss"] for h in info["history"]]
    assert losses[-1] < losses[0], losses
    assert info["train_rows"] == 2400                # every training row, and only those, was trained on
    assert all("validation_loss" in h for h in info["history"])


@pytest.mark.nn
def test_torch_distributor_trains_two_processes_in_step(distributor_model):
    model, tmp = distributor_model
    assert_trained_in_step(model.fit_info(), "torch_distributed")
    assert (tmp / "checkpoints" / "best.pt").is_file()
    assert not any((tmp / "staging").iterdir())      # the shards are removed after training


@pytest.mark.nn
def test_bin_edges_are_the_training_rows_quantiles(spark, distributor_model):
    model, _ = distributor_model
    spec = NetSpec.from_json(model.getOrDefault("netSpec"))
    assert spec.architecture == "resnet" and spec.ensemble_size == 2 and len(members(model.network())) == 2
    x, _, _ = synthetic(3000, seed=4)
    training = x[600:]                                 # as_frame: the first 20% are the validation rows
    assert len(spec.bin_edges) == NUMERIC and all(len(e) == 9 for e in spec.bin_edges)
    for i, edges in enumerate(spec.bin_edges):
        assert edges[0] == pytest.approx(training[:, i].min()) and edges[-1] == pytest.approx(training[:, i].max())
        np.testing.assert_allclose(edges[4], np.median(training[:, i]), atol=0.02)
    assert any(x[:, i].max() > training[:, i].max() or x[:, i].min() < training[:, i].min() for i in range(NUMERIC))


@pytest.mark.nn
def test_spark_scoring_equals_direct_torch_inference(spark, distributor_model):
    model, _ = distributor_model
    data = as_frame(spark, 300, seed=5).repartition(3)
    scored = model.transform(data).select("id", vector_to_array("features").alias("x"), "c0", "c1",
                                          vector_to_array("probability").alias("p"), "prediction")
    rows = sorted(scored.collect(), key=lambda r: r["id"])   # 300 test rows
    numeric = np.array([r["x"] for r in rows], np.float32)
    cats = np.array([[r["c0"], r["c1"]] for r in rows], np.int64)
    direct = predict_proba(model.network(), numeric, cats)
    np.testing.assert_allclose(np.array([r["p"] for r in rows]), direct, rtol=1e-6, atol=1e-7)
    assert [r["prediction"] for r in rows] == direct.argmax(axis=1).astype(float).tolist()


@pytest.mark.nn
def test_the_model_saves_and_loads_inside_a_pipeline_model(spark, distributor_model, tmp_path):
    model, _ = distributor_model
    data = as_frame(spark, 50, seed=6)
    PipelineModel(stages=[model]).write().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    assert isinstance(loaded.stages[0], TorchClassifierModel)
    before = model.transform(data).select("id", "prediction", vector_to_array("probability").alias("p"))
    after = loaded.transform(data).select("id", "prediction", vector_to_array("probability").alias("p"))
    assert sorted(before.collect()) == sorted(after.collect())


@pytest.mark.nn
def test_horovod_trains_two_processes_in_step(spark, tmp_path):
    pytest.importorskip("horovod.spark", reason="Horovod is not installed (scripts/build_horovod.sh)")
    data = as_frame(spark, 3000, seed=4, validation_share=0.2)
    model = estimator(tmp_path, "horovod", validationIndicatorCol="is_val", numericEncoding="quantile",
                      ensembleSize=2).fit(data)
    assert_trained_in_step(model.fit_info(), "horovod")
    p = model.transform(data.limit(20)).select(F.sum(F.aggregate(vector_to_array("probability"), F.lit(0.0),
                                                                 lambda a, b: a + b))).first()[0]
    assert p == pytest.approx(20.0, abs=1e-5)


@pytest.mark.nn
def test_torch_distributor_local_mode_runs_the_processes_on_the_driver_node(spark, tmp_path):
    data = as_frame(spark, 1200, seed=8)
    model = estimator(tmp_path, "torch_distributor", localMode=True, maxEpochs=3).fit(data)
    info = model.fit_info()
    assert info["world_size"] == 2 and len(set(info["rank_checksums"])) == 1
    assert info["train_rows"] == 1200 and "validation_loss" not in info["history"][0]   # no validation rows


@pytest.mark.nn
def test_too_few_rows_for_the_processes_is_an_error(spark, tmp_path):
    data = as_frame(spark, 3, seed=7)
    with pytest.raises(Exception, match="3 training row\\(s\\) cannot feed 2 processes"):
        estimator(tmp_path, "torch_distributor").fit(data)


# --------------------------------------------------------------------------- configuration errors
def test_horovod_chosen_but_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "horovod.spark", None)    # what an environment without it sees
    with pytest.raises(ConfigError, match="backend is 'horovod' but Horovod is not installed.*build_horovod.sh"):
        require_backend("horovod")


def test_unknown_backend_is_named():
    with pytest.raises(ConfigError, match="backend must be one of"):
        require_backend("mpi")


# --------------------------------------------------------------------------- end to end
@pytest.mark.nn
@pytest.mark.e2e
def test_train_compare_register_and_score_with_the_network(spark, cfg):
    """The network trains inside `train` next to the scorecard, is compared, registered and
    reported like the MLlib models, and the nightly scorer uses it through the same interface."""
    import dataclasses
    from datetime import date

    from credit_spark.jobs.generate import generate_records
    from credit_spark.jobs.scoring import score_run_date
    from credit_spark.jobs.train import train
    from credit_spark.lake.tables import FEATURES, SCORES, overwrite_table
    from credit_spark.report import load_results
    from credit_spark.tracking import registry
    from credit_spark.transforms.features import build_features

    t = cfg.train
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(
        t, algorithms=["neural_network", "scorecard"], tuning=dataclasses.replace(t.tuning, method="none"),
        comparison=dataclasses.replace(t.comparison, bootstrap_samples=200),
        neural_network=dataclasses.replace(t.neural_network, hidden_layers=[32, 16], max_epochs=8, batch_size=128)))
    labelled = generate_records(spark, 1600, seed=5)
    september = generate_records(spark, 200, seed=5, months=1, start_month=9, labeled=False) \
        .withColumn("Credit_Score", F.lit(None).cast("string"))
    overwrite_table(build_features(labelled.unionByName(september), cfg.spec), cfg.table_path(FEATURES),
                    partition_by=["period"])

    result = train(spark, cfg)
    # the network keeps its early-stopping holdout while the scorecard may be k-folded: the stack of
    # both learns from the validation customers that both predicted out of sample
    assert set(result.metrics) == {"neural_network", "scorecard", "ensemble"}
    network = result.metrics["neural_network"]
    assert network.auc > 0.7 and network.macro_f1 > 0.45, network.headline()
    report = load_results(result.report_dir)
    choice = report["models"]["neural_network"]["calibration"]              # chosen like the others
    assert set(choice["candidates"]) == {"none", "isotonic", "platt"}
    assert bool(network.uncalibrated) == (choice["method"] != "none") and network.reliability["after"]
    assert [d.model for d in result.comparison if d.metric == "macro_f1"] == ["neural_network", "ensemble"]
    assert result.metrics["ensemble"].auc > 0.7
    tuning = report["models"]["neural_network"]["tuning"]
    assert tuning["method"] == "early_stopping" and tuning["best_params"]["world_size"] == 2
    assert len(tuning["grid"]) == tuning["best_params"]["epochs"]           # one line per epoch
    assert report["models"]["neural_network"]["importance"]["items"]
    assert not list((Path(cfg.lake.root) / "_staging").glob("*/*"))         # shards removed after training

    scoring = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, model="neural_network"))
    night = score_run_date(spark, scoring, date(2026, 9, 30))
    assert night.rows == 200 and night.model_version == result.versions["neural_network"]
    scores = spark.read.format("delta").load(cfg.table_path(SCORES))
    assert {r[0] for r in scores.select("model_name").distinct().collect()} == {"neural_network"}
    assert scores.where(F.size("reasons") > 0).count() > 0                 # the scorecard explains it
    assert registry.resolve(scoring, "neural_network").model_name == "neural_network"
