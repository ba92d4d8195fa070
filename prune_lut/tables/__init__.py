"""Where a channel space meets a lookup table: the space's layer keys and networks, for the latency side.

``latency/`` knows layer specs, devices and tables, nothing of model families; ``pruning/`` knows
the families. This package turns a space into what the latency side measures:
``coverage`` (every key a space can produce, and few archs covering them), ``networks`` (an arch
as ONNX to measure), ``build`` (``prune-lut build``: a space's table), ``sampling`` and
``validate`` (``prune-lut validate`` / ``calibrate``: archs spread over the latency range, measured
end to end), ``verify`` (``search --verify``: a search's best archs measured on its devices).
"""
