"""The lake: the one SparkSession (``session``), Delta tables by name and their safe writes
(``tables``), the shipped SQL views (``views``), SQL text helpers (``sqltext``) and the keyed hash
of personal identifiers (``privacy``). Every table is read and written through ``tables``."""
