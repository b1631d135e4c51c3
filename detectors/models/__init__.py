"""Pedestrian-detection models behind one interface, :class:`~detectors.models.base.Detector`."""
