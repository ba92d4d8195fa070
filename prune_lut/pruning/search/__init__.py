"""MetaPruning's evolutionary search under latency budgets: ``budgets`` (one per device's table),
``fitness`` (the PruningNet's networks scored), ``run`` (the loop, its state, ``search_checkpoint``),
``result`` (the result file, read back and exported), ``plot``."""
from .budgets import Constraints, LatencyBudget, load_budgets, uniform_baseline
from .fitness import PruningNetFitness, SearchTimes, split_over_ranks
from .plot import plot_result
from .result import RESULT_SCHEMA, build_result, export_result, load_result, result_arch
from .run import Verifier, pruningnet_checkpoint, run_search, search_checkpoint, state_path

__all__ = ["Constraints", "LatencyBudget", "PruningNetFitness", "RESULT_SCHEMA", "SearchTimes", "Verifier",
           "build_result", "export_result", "load_budgets", "load_result", "plot_result", "pruningnet_checkpoint",
           "result_arch", "run_search", "search_checkpoint", "split_over_ranks", "state_path", "uniform_baseline"]
