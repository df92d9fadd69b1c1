r"""A pyramidal neuron whose basal dendrite low-pass filters its input (a neuron model plugin).

The basal dendrite has a potential of its own, ``v_D``, that follows the summed basal drive
``v_B = Σ W r_pre + b`` with its own time constant ``τ_D``; the soma is coupled to the
dendrite instead of to the drive itself:

.. math::

    τ_D \frac{dv_D}{dt} = v_B - v_D, \qquad
    τ \frac{du}{dt} = -g_L u + g_B (v_D - u) + g_A (v_A - u), \qquad r = f(u)

At steady state ``v_D = v_B`` and the neuron is the pyramidal neuron; under simulated
compartments (``dynamics.mode: euler``) a change of the drive reaches the soma only after
``τ_D``. The dendritic prediction and the local error use the filtered potential:
``v̂ = (g_B/g) v_D``, ``e = (f(u) − f(v̂))/λ``.

Load it with ``--plugin lowpass_pyramidal.py`` and write ``type: lowpass_pyramidal`` (with
``tau_dendrite: 2.0`` if you like) on a population.
"""
from dataclasses import dataclass

import torch

import dendrisim
from dendrisim import functional as Fn
from dendrisim.errors import ConfigError
from dendrisim.neurons import PyramidalPopulation


@dataclass(frozen=True)
class LowPassOptions(dendrisim.NeuronOptions):
    tau_dendrite: float = dendrisim.option(2.0, "time constant τ_D of the basal dendrite's low-pass filter", gt=0)


@dendrisim.register_neuron("lowpass_pyramidal")
class LowPassPyramidal(PyramidalPopulation):
    """Pyramidal neurons whose basal dendrite low-pass filters the basal drive (τ_D dv_D/dt = v_B − v_D)."""

    Options = LowPassOptions
    variables = {**PyramidalPopulation.variables, "dendrite": "the basal dendrite's filtered potential v_D"}
    summary = "a pyramidal neuron whose basal dendrite low-pass filters its input with its own time constant"
    prediction_from_basal = False  # the prediction follows v_D, which moves within a presentation

    @classmethod
    def from_config(cls, name, shape, config, *, options, simulated):
        neuron = super().from_config(name, shape, config, options=options, simulated=simulated)
        neuron.tau_dendrite = options.tau_dendrite
        return neuron

    @classmethod
    def check(cls, name, config, options, *, file):
        ratio = config.dynamics.dt / options.tau_dendrite
        if ratio >= 2:
            raise ConfigError(f"dt {config.dynamics.dt} / tau_dendrite {options.tau_dendrite} = {ratio:.3g}: forward "
                              f"Euler diverges from 2 on; use tau_dendrite > {config.dynamics.dt / 2:g}",
                              file=file, path=f"populations.{name}.tau_dendrite")

    def describe(self) -> str:
        """The pyramidal constants and the dendrite's own (``dendrisim check``, the start of a run)."""
        return f"{super().describe()}, tau_dendrite {self.tau_dendrite}"

    def integrate(self, s, basal: torch.Tensor) -> torch.Tensor:
        """The free state ``s``: the dendrite at rest under the drive (``v_D = v_B``), then the pyramidal one."""
        s.dendrite = basal
        return super().integrate(s, basal)

    def prediction(self, s, basal: torch.Tensor) -> torch.Tensor:
        """``v̂ = (g_B/g) · v_D``: the soma's prediction from the filtered dendrite."""
        return super().prediction(s, s.dendrite)

    def step(self, s, u: torch.Tensor, basal: torch.Tensor, *, dt: float) -> None:
        """One Euler step of ``dt`` from the state ``s``: the soma ``u`` toward ``v_D`` (and the
        apical input), the dendrite toward ``v_B``; both from the values before the step."""
        c = self.compartments
        dendrite = s.dendrite
        Fn.compartment_step(u, dendrite, s.apical, dt=dt, tau=c.tau, g_leak=c.g_leak, g_basal=c.g_basal,
                            g_apical=c.g_apical, out=u)
        s.dendrite = dendrite + (basal - dendrite) * (dt / self.tau_dendrite)
        s.rate = self.activation.f(u)
