"""Configuration: YAML layers (``conf/base.yaml``, an environment overlay, ``--conf`` files) and the
dataset spec, parsed into validated frozen models (``loader``: ``load_config``,
``load_dataset_spec``; ``settings``: Spark, lake, train, score, tracking; ``spec``: the dataset
spec; ``typed``: the checking behind both; ``catalog``: the features a spec yields) and the JSON
Schemas generated from them (``schema``)."""


def __getattr__(name: str):
    """``from credit_spark.config import load_config`` (the 0.2 module's names) still works: they
    are looked up in ``loader`` on first use, so importing a submodule loads nothing more."""
    from credit_spark.config import loader

    try:
        return getattr(loader, name)
    except AttributeError:
        raise AttributeError(f"module 'credit_spark.config' has no attribute {name!r}") from None
