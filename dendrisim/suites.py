"""What a results suite is made of: comparisons of contenders (``dendrisim results``;
:mod:`dendrisim.results` runs them, :mod:`dendrisim.paper` holds the paper's)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Contender:
    """One row of a comparison: a rule, or a rule with named options (a variant)."""
    label: str
    rule: str
    overrides: tuple[str, ...] = ()
    what: str = ""
    fixed: tuple[str, ...] = ()  # tunables this contender holds at its overrides' value (--tune-fix)
    twin: bool = False  # runs on the feedforward twin of the comparison's circuit (feedforward_twin)
    paper: tuple = ()  # what Lv et al. 2025 report for it (dendrisim.paper.Quote), shown beside ours
    differs: str = ""  # one line: how our setting differs from the paper's
    derive: Optional[Callable[[dict], dict]] = None  # its own model file: derive(the comparison's) (in its folder)


@dataclass(frozen=True)
class Comparison:
    """A model file, the contenders run on it, their epochs, seeds and equal tuning budget."""
    name: str
    title: str
    model: str
    contenders: tuple[Contender, ...]
    epochs: int
    tune: int
    tune_epochs: int
    seeds: tuple[int, ...] = (0,)
    needs: Optional[str] = None  # "text", "series", "gensim_mr" or a dataset name that must load here
    overrides: tuple[str, ...] = ()
    reference: str = "bp"  # the contender the others are measured against
    derive: Optional[Callable[[dict], dict]] = None  # the model file run: derive(model) (written beside the runs)
    optional: Optional[str] = None  # why it runs only when --only names it (hours on a CPU)
    metrics: tuple[str, ...] = ()  # the metrics a paper table shows (default: the one the task reports)
