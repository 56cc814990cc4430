"""Regression alerts: when an audit finishes and a node went from ready to not ready, or a check newly fails,
notify the cluster's webhooks (signed JSON, retried with backoff by a Celery task) and e-mail addresses.

`regressions` (pure) finds what got worse; `policy` says where a webhook may be sent; `services` records and sends.
"""
