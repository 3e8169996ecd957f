"""Tracking: MLflow runs, registered models, artifacts and the ``champion`` alias (``registry``),
and the rule that promotes a challenger (``promotion``)."""
