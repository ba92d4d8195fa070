"""The ``prune-lut`` command line: argument handling and printing only; the work lives in the packages.

One module per command group (``space``, ``build``, ``lut``, ``predict``, ``validate``, ``train``,
``search``, ``export``, ``devices``, ``quickstart``); shared options in ``options``, text output in
``render``. Each module registers its commands on the group in ``app``.
"""
from . import build, devices, export, lut, predict, quickstart, search, space, train, validate  # noqa: F401
from .app import main

__all__ = ["main"]
