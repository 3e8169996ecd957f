"""The project's exception hierarchy: every failure a user can cause names what to fix."""


class CreditSparkError(Exception):
    """Base class: the CLI turns these into a one-line message and a non-zero exit."""


class ConfigError(CreditSparkError):
    """A config or dataset-spec key is unknown, missing or has an invalid value."""


class MissingColumnError(CreditSparkError):
    """An input lacks columns that the dataset spec requires."""


class ModelNotFoundError(CreditSparkError):
    """No trained model is registered (or its files are missing) for scoring."""


class NoRecordsError(CreditSparkError):
    """A stage found nothing to work on (e.g. no records for the run date)."""


class TableNotFoundError(CreditSparkError):
    """A stage needs a lake table that an earlier stage has not written yet."""


class DriftAlert(CreditSparkError):
    """Scores were written, but population stability reached ``score.monitoring.fail_on``."""

    exit_code = 3
