"""A settling scheme of your own, in a plugin file: the steady sweep with the output's teacher
scaled by a factor (a scheme option, a key of the ``dynamics:`` block).

``teacher_scale: 1`` is the steady scheme itself, bit for bit; ``0.5`` halves every error the
teacher sends down. Load it with ``--plugin scaled_teacher.py`` and write
``dynamics: {mode: scaled_teacher, teacher_scale: 0.5}``.
"""
from dataclasses import dataclass

import dendrisim
from dendrisim.settling import SchemeOptions, SteadyState


@dataclass(frozen=True)
class ScaledTeacherOptions(SchemeOptions):
    teacher_scale: float = dendrisim.option(1.0, "factor on the output's teacher t − f(v̂)", gt=0)


@dendrisim.register_scheme("scaled_teacher")
class ScaledTeacher(SteadyState):
    """The sweep with the teacher scaled: ``target ← rate + s (target − rate)``."""

    Options = ScaledTeacherOptions

    def _present(self, network, rule, state, capture):
        s = self.options.teacher_scale
        if state.target is not None and s != 1.0:
            rate = state.output.rate
            state.target = rate + s * (state.target - rate)
        return super()._present(network, rule, state, capture)

    def describe(self, network):
        return [f"dynamics scaled_teacher: the steady sweep, teacher scaled by {self.options.teacher_scale}"]
