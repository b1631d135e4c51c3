"""Faust agents: each one a loop over a stream, calling pure functions for the work."""
