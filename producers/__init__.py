"""Producers: turn camera footage into authenticated ``pds.frames`` events on Kafka."""
