"""One library function per job, each read - transform - write: ``generate``, ``ingest``,
``features_job``, ``train``, ``scoring``, ``maintenance``, ``erasure`` (forget), ``sql_server``
(serve-sql) and ``spec_draft``. The ``credit-spark`` CLI and ``jobs/*.py`` (spark-submit) call
these."""
