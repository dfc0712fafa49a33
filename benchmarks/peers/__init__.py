"""Peer frameworks benchmark: the same no-op workload on Celery, RQ, Dramatiq, arq,
taskiq-redis, FastStream, saq, swarmstream and a raw redis-py loop (see README.md)."""
