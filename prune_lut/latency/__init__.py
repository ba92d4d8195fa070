"""Latency toolkit: layer specs, device backends, lookup-table files, prediction, calibration.

Knows nothing of model families or PruningNets: anyone can build a table for any list of layer specs.
"""
