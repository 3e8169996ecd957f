"""Evaluation: the paired bootstrap of every model against the scorecard (``comparison``), PSI/CSI
monitoring (``monitoring``) and a training run's results for the report (``run_report``)."""
