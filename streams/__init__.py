"""Kafka streams of the SecMLOps pedestrian-detection monitor: topics, events, the Faust app.

Also home of the local stack (:mod:`streams.stack`) and the ``secmlops`` CLI.
"""

__version__ = "0.1.0"
