"""Plasticity rules, registered by name: ``RULES.get("dll")``."""
from .base import RULES, PlasticityRule, Relaxation, RuleOptions
from . import rules as _rules  # noqa: F401  (registers bp, fa, dfa)
from . import dll as _dll  # noqa: F401  (registers dll)
from . import pc as _pc  # noqa: F401  (registers pc)
from . import microcircuit as _microcircuit  # noqa: F401  (registers mc_basal, mc_lateral, mc_topdown)
from . import burst as _burst  # noqa: F401  (registers burstccn, burstprop)
from .mixed import MixedPlasticity


def build_rule(network, experiment) -> PlasticityRule:
    """The rule named in the model file, set up for ``network``; where projections ask for
    rules of their own, one :class:`MixedPlasticity` over all of them."""
    if experiment.mixed:
        return MixedPlasticity(network, experiment)
    return RULES.get(experiment.rule.rule)(network, experiment.rule)


__all__ = ["RULES", "MixedPlasticity", "PlasticityRule", "Relaxation", "RuleOptions", "build_rule"]
