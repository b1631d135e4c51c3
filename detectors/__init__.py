"""Pedestrian detectors and the security monitors that watch them.

Pure computation only: no Kafka, no Redis.  Agents in :mod:`streams` call in.
"""
