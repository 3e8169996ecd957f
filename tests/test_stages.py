import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.testing import assertDataFrameEqual

from credit_spark.ml.stages import MedianImputer, MedianImputerModel


def test_medians_learned_on_training_data_and_all_null_columns_fall_back(spark):
    train = spark.createDataFrame([(1.0, None), (3.0, None), (100.0, None), (None, None)], "a double, b double")
    model = MedianImputer(inputCols=["a", "b"], outputCols=["a_i", "b_i"], fallback=-1.0).fit(train)
    assert model.surrogate_values() == {"a": 3.0, "b": -1.0}
    test = spark.createDataFrame([(None, None), (7.0, float("nan"))], "a double, b double")
    out = model.transform(test).select("a_i", "b_i")
    assertDataFrameEqual(out, spark.createDataFrame([(3.0, -1.0), (7.0, -1.0)], "a_i double, b_i double"),
                         checkRowOrder=True)


def test_round_trips_inside_a_saved_pipeline(spark, tmp_path):
    train = spark.createDataFrame([(1.0,), (2.0,), (9.0,)], "a double")
    fitted = Pipeline(stages=[MedianImputer(inputCols=["a"], outputCols=["a_i"])]).fit(train)
    fitted.write().overwrite().save(str(tmp_path / "p"))
    loaded = PipelineModel.load(str(tmp_path / "p"))
    assert isinstance(loaded.stages[0], MedianImputerModel)
    test = spark.createDataFrame([(None,), (5.0,)], "a double")
    assertDataFrameEqual(loaded.transform(test), fitted.transform(test))


def test_mismatched_columns_and_wrong_input_are_named(spark):
    df = spark.createDataFrame([(1.0,)], "a double")
    with pytest.raises(ValueError, match=r"inputCols \(1\) and outputCols \(2\)"):
        MedianImputer(inputCols=["a"], outputCols=["x", "y"]).fit(df)
    with pytest.raises(TypeError, match="dataset must be a DataFrame but got list"):
        MedianImputer(inputCols=["a"], outputCols=["x"]).fit([1, 2])
