"""nasagent: a design agent that searches architecture spaces, learns where the good designs are, and
evaluates candidates cheaply and at scale."""

from nasagent.api import Comparison, RunConfig, compare, load_run, resume, search
from nasagent.core import Budget, NasagentError, Objective, Result, Trial
from nasagent.registry import make_benchmark, make_space, make_strategy

__version__ = "0.1.0"

__all__ = [
    "search",
    "resume",
    "compare",
    "load_run",
    "RunConfig",
    "Comparison",
    "Budget",
    "Objective",
    "Result",
    "Trial",
    "NasagentError",
    "make_benchmark",
    "make_space",
    "make_strategy",
]
