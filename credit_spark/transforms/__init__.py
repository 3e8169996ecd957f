"""Pure ``DataFrame -> DataFrame`` transforms driven by the dataset spec: cleaning and feature
engineering (``features``; Spark built-ins, no Python UDFs), data-quality records (``quality``)
and customer-grouped splits (``splits``)."""
