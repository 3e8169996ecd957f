"""Models: pipeline builders per algorithm (``models``), the custom stages whose fitted state lives
in params so they save inside a ``PipelineModel`` (``stages``, ``scorecard`` with ``binning``,
``calibration``, ``decision``, ``reasons``, ``ensemble``, ``neural``), the network in plain torch
(``torch_net``, ``torch_train``), metrics from small aggregates and the evaluator that
tuning uses (``metrics``), grid search and k-fold selection (``tuning``) and what a fitted
model exposes (``introspection``)."""
