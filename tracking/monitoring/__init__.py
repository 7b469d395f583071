"""Monitoring served models: the prediction log, outcomes, variant comparison and drift.

prediction_log  the log's storage format and reader (``predictions/{model}/{date}/{hour}/``)
feedback        outcomes (labels) by request id or sticky key (``feedback/{model}/...``)
compare         pure statistics: AUC, logloss, Brier, bootstrap intervals, differences
drift           pure statistics: profiles, PSI, KS
reports         the ``ab`` and ``drift`` reports, built from the stores (CLI and HTTP)
"""
