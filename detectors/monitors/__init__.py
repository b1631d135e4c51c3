"""Security monitors: plug-in detectors that score frames and predictions (see ``base``)."""
