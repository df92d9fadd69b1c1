r"""Settling schemes: how apical inputs, errors and somata come to be over one presentation.

A settling scheme (chosen by the model file's ``dynamics.mode``) presents a batch: given the
network, the rule and the target, it settles every compartment and leaves the rule's
updates in ``.grad`` (:meth:`SettlingScheme.present`). It returns what observers need (the
trajectory the recorder keeps) in a :class:`Presentation` instead of leaving it in the
populations. The rule only declares (what a scheme reads of it is the :class:`Rule`
protocol: its feedback weights and gains, ``truncate``, pc's ``relaxation``) and computes
how a projection changes from its two ends (``compute_updates``); the scheme decides when
each compartment is computed. So every rule whose apical input comes through feedback
weights runs under every scheme, with no per-rule code. The equations each scheme uses
are written once: the apical input from the errors above (``projections.apical_sum``), the
basal drive (``projections.basal_drive``), both sums over projections, and one population's
Euler step (``functional.compartment_step``, a pure function of tensors).

``steady`` (the default): the sweep. The forward pass leaves ``soma = basal``; the scheme then
fills apical inputs and errors top-down in one pass through the rule's feedback (backward
through time in a recurrent network), and the updates follow. Exact and instant. For a
rule that declares a relaxation (pc's iterative inference, ``rule.relaxation``) the scheme
runs that relaxation (:func:`relax`) in place of the sweep.

``euler``: simulated compartments, one phase. Rate-based, conductance-coupled pyramidal
neurons (Sacramento, Costa, Bengio & Senn 2018, eq. 1; Urbanczik & Senn 2014), every
population stepped at once by forward Euler from the state of the previous step:

.. math::

    τ \frac{du}{dt} &= -g_L u + g_B (v_B - u) + g_A (v_A - u), \qquad r = f(u) \\
    v_B &= Σ_p W_p r_{pre} + b                 &&\text{basal: feedforward drive} \\
    v̂_B &= \tfrac{g_B}{g} v_B, \quad λ = \tfrac{g_A}{g}, \quad g = g_L + g_B + g_A
                                               &&\text{dendritic prediction, nudging} \\
    e &= (f(u) - f(v̂_B)) / λ                  &&\text{local error: soma against dendrite} \\
    v_A &= \text{top\_down}(e \text{ of the populations above})
                                               &&\text{θ (dll), Wᵀ (bp), B (fa, kp), direct B (dfa)}

The output's apical input is the teacher, computed from its dendritic prediction,
``v_A = t − f(v̂_B)``; for an output whose loss is canonical for its activation (softmax,
sigmoid, linear) the error is the potential mismatch ``e = (u − v̂_B)/λ``, which at the
fixed point is exactly ``t − f(v̂_B)``, today's ``δ_out``. A presentation starts from the
free state the forward pass leaves (``u = v̂_B``: no teacher yet, every error zero), and the
teacher's error reaches one population further down per step, as in a circuit: there is
no backward sweep. At the fixed point ``u = v̂_B + λ v_A``; with ``g_L = 0`` and ``g_A → 0``,
``v̂_B → v_B`` and ``e → f'(v̂_B) ⊙ v_A``, the steady δ, so the sweep is the exact limit of
the dynamics (first order in λ; ``tests/test_dynamics.py``). With a leak the forward
drive is attenuated by ``g_B/g`` in every population.

A microcircuit (Sacramento et al. 2018; ``Network.circuit``) adds interneurons and explicit
apical and somatic projections, and only euler runs it (``runs_circuits``; the sweep cannot
settle an apical input that moves with the somata it feeds):

.. math::

    v_A &= \text{top\_down}(e) + Σ_{p \in apical} W_p r_{pre}
                                               &&\text{hidden: the rule's part + top-down and lateral rates} \\
    τ \frac{du_I}{dt} &= -g_L u_I + g_D (v_D - u_I) + g_{som} (u_{k+1} - u_I)
                                               &&\text{interneuron: dendrite } v_D = Σ_p W_p r_{pre} + b \\
    v̂_D &= \tfrac{g_D}{g_L + g_D} v_D, \quad e_I = (f(u_I) - f(v̂_D)) / λ_I
                                               &&\text{its prediction leaves the nudging out}

The explicit apical input is there from step 0 (the free state); the interneuron takes the
pyramidal step with ``g_B = g_D``, ``g_A = g_som`` and the soma of the population it
predicts, one to one, in its apical slot (``nudging``). Without a teacher (``target`` None)
the output's apical input is zero.

Updates are those of the rule evaluated on the dynamic quantities (rate ``r = f(u)``,
error ``e``, apical ``v_A``): basal synapses ``ΔW ∝ e_postᵀ r_pre`` (the Urbanczik–Senn form),
DLL's θ from ``v_A`` and ``e``. ``plasticity: settled`` takes them at the end of the
presentation; ``online`` averages them over its steps. Euler is stable for
``dt·g/τ < 2`` (checked before any tensor exists).

One name for one concept: a *settling scheme* (``dynamics.mode`` in the model file, this
module ``dendrisim.settling``, the registry ``SCHEMES``).

The package holds one file per scheme, as ``dendrisim.plasticity`` holds one per rule: the
contract they share (the ``Rule`` protocol, ``Presentation``, ``SettlingScheme``, the
registry ``SCHEMES``) in ``dendrisim.settling.base``, the sweep in ``steady.py``, pc's
relaxation in ``relaxation.py`` and the simulated compartments in ``euler.py``.
"""
from .base import (SCHEMES, Presentation, Rule, SchemeOptions, SettlingScheme, free_target, runs_under,
                   schemes_of, updates)
from .euler import EulerDynamics, check_simulated, local_errors
from .relaxation import relax
from .steady import SteadyState

SchemeOptions.__module__ = __name__  # documented (and cross-referenced) where users import it from

__all__ = ["SCHEMES", "EulerDynamics", "Presentation", "Rule", "SchemeOptions", "SettlingScheme", "SteadyState",
           "check_simulated", "free_target", "local_errors", "relax", "runs_under", "schemes_of", "updates"]
