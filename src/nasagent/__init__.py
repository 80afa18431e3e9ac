"""nasagent: a design agent that searches architecture spaces, learns where the good designs are, and
evaluates candidates cheaply and at scale."""

from nasagent.api import Comparison, RunConfig, compare, load_run, resume, search
from nasagent.core import Budget, NasagentError, Objective, Result, Trial
from nasagent.registry import make_benchmark, make_space, make_strategy


def build(arch, num_classes: int = 10, input_shape=(3, 32, 32), space=None, **sizes):
    """The trainable ``torch.nn.Module`` of an architecture (object or string); see nasagent.evaluation.networks."""
    from nasagent.evaluation.networks import build as _build

    return _build(arch, num_classes=num_classes, input_shape=input_shape, space=space, **sizes)


def select_top_k(run_dir, k: int = 10, **options):
    """Train a weight-sharing run's ``k`` best-scored architectures from scratch and name the best by validation
    accuracy; see nasagent.evaluation.selection."""
    from nasagent.evaluation.selection import select_top_k as _select

    return _select(run_dir, k, **options)


__version__ = "0.1.0"

__all__ = [
    "build",
    "select_top_k",
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
