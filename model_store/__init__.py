"""The model store: signed, versioned detector artifacts and their Redis registry.

Planned by the issue «Pedestrian detector agent … and a signed model store»;
this package holds nothing yet.
"""
