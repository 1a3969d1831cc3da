"""bnlab's Celery worker: leases a job, runs the training core on it, stores what it reports.

Start it with `celery -A worker.app worker --pool=prefork --concurrency=1 -Q default,cpu` (or `default,gpu`).
"""
