"""Benchmarking: open standard datasets under their papers' protocols, run a depth source, write tables.

>>> from metricdepth.evaluation import PredictionFolder, evaluate, open_benchmark, write_tables
>>> sets = [open_benchmark("middlebury=/data/middlebury2014")]
>>> write_tables(evaluate(PredictionFolder("preds"), sets, ["none", "median"]), "eval_out")
"""

from .predictors import ModelPredictor, PredictionFolder
from .protocols import BENCHMARKS, Benchmark, EvalSet, Protocol, open_benchmark, parse_benchmark_arg
from .runner import EvalResult, evaluate
from .tables import markdown_report, write_tables

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EvalResult",
    "EvalSet",
    "ModelPredictor",
    "PredictionFolder",
    "Protocol",
    "evaluate",
    "markdown_report",
    "open_benchmark",
    "parse_benchmark_arg",
    "write_tables",
]
