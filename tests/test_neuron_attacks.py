"""Attacks on neuron models as plug-ins, from the outside: model files and plugin files whose
every failure must end in one paragraph ``error: ...`` (exit 2, no traceback), and plugin
classes that break the neuron-model contract, refused when they are registered."""
from __future__ import annotations

import contextlib
import io
import runpy
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from dendrisim.neurons import NeuronModel, PyramidalPopulation
from dendrisim.plugins import PluginError, neuron_contract_problem

ROOT = Path(__file__).resolve().parents[1]
MLP = (ROOT / "models" / "dll_mlp_digits.yaml").read_text()
HEADER = "import torch\nimport dendrisim\nfrom dendrisim.neurons import NeuronModel, PyramidalPopulation\n"


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch):
    """What a test registers in this process is gone after it (other tests load the example plugin)."""
    import dendrisim.plugins as plugins
    from dendrisim.neurons import NEURONS

    monkeypatch.setattr(NEURONS, "_entries", dict(NEURONS._entries))
    monkeypatch.setattr(plugins, "NEURON_ORIGIN", dict(plugins.NEURON_ORIGIN))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed command's entry point, ``dendrisim.commands.main``, in this process (what
    ``python -m dendrisim`` runs, without its seconds of start-up): its exit code and output."""
    from dendrisim.commands import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _one_paragraph(proc: subprocess.CompletedProcess) -> str:
    """The error of a refused command: exit 2, no traceback, one paragraph ``error: ...``."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n\n" not in err, err
    return err


def _plugin(tmp_path: Path, body: str, name: str = "plug") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def _model(tmp_path: Path, h1: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(MLP.replace("h1:     {type: pyramidal, size: 128, activation: tanh}", f"h1: {h1}"))
    assert f"h1: {h1}" in path.read_text()
    return path


def _run(tmp_path: Path, model: Path, plugin: Path) -> subprocess.CompletedProcess:
    return _cli("run", str(model), "--plugin", str(plugin), "--epochs", "1", "--set",
                "training.max_steps_per_epoch=2", "--out", str(tmp_path / "run"), cwd=tmp_path)


def _subclass(base=PyramidalPopulation, **attrs) -> type:
    return type("Attacker", (base,), {"__module__": "attacker", **attrs})


# ---------------------------------------------------------------- the contract, at registration
@pytest.mark.parametrize("variables, expected", [
    (["soma", "rate"], "not a dict"),
    ({**PyramidalPopulation.variables, "my var": "x"}, "'my var'"),
    ({**PyramidalPopulation.variables, 3: "x"}, "3"),
    ({**PyramidalPopulation.variables, "extra": 3}, "'extra'"),
    ({**PyramidalPopulation.variables, "_hidden": "x"}, "'_hidden'"),
])
def test_bad_variables_are_named_not_called_missing(variables, expected):
    problem = neuron_contract_problem(_subclass(variables=variables))
    assert problem is not None and expected in problem and "declares no variables" not in problem, problem


@pytest.mark.parametrize("var", ["forward", "shape", "size", "name", "training", "state", "prediction",
                                 "activation", "compartments", "variables"])
def test_variables_that_shadow_the_model_are_refused(var):
    """A variable is an attribute of the population (set to None when it is built): one named like
    a method or an attribute the model has would replace it."""
    problem = neuron_contract_problem(_subclass(variables={**PyramidalPopulation.variables, var: "x"}))
    assert problem is not None and repr(var) in problem, problem


def test_variables_that_are_settable_properties_are_fine():
    from dendrisim.neurons import InterneuronPopulation

    assert neuron_contract_problem(_subclass(InterneuronPopulation)) is None


@pytest.mark.parametrize("constants, expected", [
    ("tau", "'tau'"),
    (("tau", "g_leak", "g_foo", "g_apical"), "'g_foo'"),
    (("tau", "g_leak"), "four"),
    (("g_leak", "tau", "g_basal", "g_apical"), "tau, g_leak"),
])
def test_bad_constants_are_refused(constants, expected):
    problem = neuron_contract_problem(_subclass(constants=constants))
    assert problem is not None and "constants" in problem and expected in problem, problem


@pytest.mark.parametrize("flag", ["clamped", "offers_output", "offers_apical", "takes_nudging", "offers_nudging",
                                  "spatial", "apical_learns", "prediction_from_basal"])
def test_flags_that_are_not_bools_are_refused(flag):
    problem = neuron_contract_problem(_subclass(**{flag: "yes"}))
    assert problem is not None and flag in problem and "'yes'" in problem, problem


def _integrate(self, s, basal):
    s.rate = basal
    return basal


def test_a_simulated_model_without_step_is_refused():
    cls = _subclass(NeuronModel, variables={"soma": "u", "basal": "b", "apical": "a", "rate": "r", "error": "e"},
                    integrate=_integrate, derivative=lambda self, s: s.rate, constants=("tau", "g_leak", "g_basal",
                                                                                         "g_apical"))
    problem = neuron_contract_problem(cls)
    assert problem is not None and "step" in problem, problem


def test_an_apical_model_without_derivative_is_refused():
    cls = _subclass(NeuronModel, variables={"soma": "u", "apical": "a", "rate": "r", "error": "e"},
                    integrate=_integrate, offers_apical=True)
    problem = neuron_contract_problem(cls)
    assert problem is not None and "derivative" in problem, problem


@pytest.mark.parametrize("attrs, expected", [
    ({"takes_nudging": True}, "takes_nudging"),           # a pyramidal neuron nudged through its apical slot
    ({"second_input": "soma"}, "takes_nudging"),          # a second input no projection may fill
    ({"variables": {"rate": "r", "basal": "b", "apical": "a", "error": "e"}}, "'soma'"),  # the output's loss reads it
])
def test_inconsistent_offers_are_refused(attrs, expected):
    problem = neuron_contract_problem(_subclass(**attrs))
    assert problem is not None and expected in problem, problem


def test_a_nudged_model_that_claims_an_apical_compartment_is_refused():
    from dendrisim.neurons import InterneuronPopulation

    problem = neuron_contract_problem(_subclass(InterneuronPopulation, offers_apical=True,
                                                derivative=lambda self, s: s.rate))
    assert problem is not None and "takes_nudging" in problem and "offers_apical" in problem, problem


@pytest.mark.parametrize("attrs, expected", [
    ({"integrate": lambda self: None}, "integrate(self, s, basal)"),
    ({"step": lambda self, u, *, dt: None}, "step(self, s, u, basal, *, dt)"),
    ({"check": classmethod(lambda cls, name, config, options: None)}, "check(cls, name, config, options, *, file)"),
    ({"from_config": classmethod(lambda cls, name, shape, config: None)}, "from_config(cls, name, shape, config, *, "
                                                                           "options, simulated)"),
])
def test_hooks_that_cannot_take_their_arguments_are_refused_at_load(attrs, expected):
    """Before: a TypeError when the network or the graph check first called them."""
    problem = neuron_contract_problem(_subclass(**attrs))
    assert problem is not None and expected in problem, problem


def test_hooks_that_take_more_are_fine():
    assert neuron_contract_problem(_subclass(integrate=lambda self, s, basal, *rest, **more: None,
                                             step=lambda self, s, u, basal, dt=0.1: None)) is None


@pytest.mark.parametrize("key", ["type", "size", "shape", "channels", "activation"])
def test_options_named_like_a_population_key_are_refused(key, tmp_path):
    plugin = _plugin(tmp_path, f"""
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class O(dendrisim.NeuronOptions):
            {key}: int = 3

        @dendrisim.register_neuron("clash")
        class P(PyramidalPopulation):
            Options = O
        """)
    err = _one_paragraph(_cli("neurons", "--plugin", str(plugin), cwd=tmp_path))
    assert str(plugin) in err and repr(key) in err, err


@pytest.mark.parametrize("field, expected", [
    ("table: dict = dataclasses.field(default_factory=dict)", "'table' of type"),
    ("items: list = dataclasses.field(default_factory=list)", "'items' of type"),
    ("where: 'NoSuchType' = None", "NameError"),
    ("tau: float = dendrisim.option(-1.0, 'a time constant', gt=0)", "must be > 0"),
    ("tau: float = 'slow'", "'slow' is not float"),
    ("tau: float = dendrisim.option(1.0, 'a time constant', ne=5)", "'ne'"),        # a bound nothing checks
    ("tau: float = dendrisim.option(1.0, 'a time constant', gt='zero')", "bounds"),  # was a TypeError at import
    ("tau: float = dendrisim.option(1.0, 3)", "doc"),
])
def test_options_a_model_file_cannot_give_are_refused_at_load(field, expected, tmp_path):
    """Before: a traceback from the config parser when the key was given (or, for a default its
    own bounds refuse, a silently out-of-bounds option when it was not)."""
    plugin = _plugin(tmp_path, f"""
        import dataclasses

        @dataclasses.dataclass(frozen=True)
        class O(dendrisim.NeuronOptions):
            {field}

        @dendrisim.register_neuron("weird")
        class P(PyramidalPopulation):
            Options = O
        """)
    err = _one_paragraph(_cli("neurons", "--plugin", str(plugin), cwd=tmp_path))
    assert str(plugin) in err and "option" in err.lower() and expected in err, err


def test_a_summary_that_is_not_a_string_is_refused():
    """Before: ``dendrisim neurons`` crashed wrapping it."""
    problem = neuron_contract_problem(_subclass(summary=3))
    assert problem is not None and "summary" in problem, problem


def _registered(base=PyramidalPopulation, **attrs) -> type:
    from dendrisim.plugins import register_neuron

    cls = _subclass(base, **attrs)
    return register_neuron(f"attack_{uuid.uuid4().hex[:8]}")(cls)


def test_from_config_that_returns_no_population_is_named():
    cls = _registered(from_config=classmethod(lambda cls, name, shape, config, *, options, simulated: None))
    with pytest.raises(PluginError, match=r"from_config returned NoneType None for population h1; expected an "
                                          r"instance of Attacker"):
        cls.from_config("h1", (4,), None, options=None, simulated=False)


def test_describe_and_bytes_per_neuron_results_are_checked():
    from dendrisim.activations import ACTIVATIONS

    cls = _registered(describe=lambda self: 3, bytes_per_neuron=lambda self, itemsize: "x")
    pop = cls("h1", (4,), ACTIVATIONS.get("tanh"))
    with pytest.raises(PluginError, match="describe returned int 3; expected one line"):
        pop.describe()
    with pytest.raises(PluginError, match="bytes_per_neuron returned str 'x'"):
        pop.bytes_per_neuron(4)


def test_a_contract_breach_is_one_paragraph_naming_the_file(tmp_path):
    plugin = _plugin(tmp_path, """
        @dendrisim.register_neuron("shadow")
        class P(PyramidalPopulation):
            variables = {**PyramidalPopulation.variables, "forward": "x"}
        """)
    err = _one_paragraph(_cli("neurons", "--plugin", str(plugin), cwd=tmp_path))
    assert str(plugin) in err and "'forward'" in err, err


def test_the_example_plugin_keeps_its_contract():
    from dendrisim.neurons import NEURONS

    if "lowpass_pyramidal" not in NEURONS:  # another test may have loaded it for the whole process
        runpy.run_path(str(ROOT / "examples" / "neurons" / "lowpass_pyramidal.py"))  # registers (this test only)

    assert neuron_contract_problem(NEURONS.get("lowpass_pyramidal")) is None


def _steady_only(**attrs) -> type:
    """A model of its own (no pyramidal code): steady state only unless ``attrs`` say otherwise."""
    def integrate(self, s, basal):
        s.basal = s.soma = basal
        s.rate = self.activation.f(basal)
        return s.rate

    return _registered(base=NeuronModel, variables={"soma": "u", "basal": "b", "apical": "a", "rate": "r",
                                                    "error": "e"},
                       offers_apical=True, offers_output=True, integrate=integrate,
                       derivative=lambda self, s: self.activation.df(s.soma, s.rate), **attrs)


def test_a_model_built_without_an_activation_is_named():
    """NeuronModel's own from_config builds ``cls(name, shape)``: before, the first scheme to call
    ``pop.activation.f`` raised an AttributeError."""
    cls = _steady_only()
    with pytest.raises(PluginError, match="from_config built population h1 without an activation"):
        cls.from_config("h1", (4,), None, options=None, simulated=False)


def test_a_simulated_model_built_without_its_constants_is_named():
    from dendrisim.activations import ACTIVATIONS

    def from_config(cls, name, shape, config, *, options, simulated):
        pop = cls(name, shape)
        pop.activation = ACTIVATIONS.get("tanh")
        return pop

    cls = _steady_only(from_config=classmethod(from_config), constants=("tau", "g_leak", "g_basal", "g_apical"),
                       step=lambda self, s, u, basal, *, dt: None, prediction=lambda self, s, basal: basal,
                       local_error=lambda self, rate, f, *, out=None: rate - f)
    assert isinstance(cls.from_config("h1", (4,), None, options=None, simulated=False), cls)
    with pytest.raises(PluginError, match="without its constants under simulated compartments"):
        cls.from_config("h1", (4,), None, options=None, simulated=True)


def test_a_steady_only_model_under_euler_is_refused_by_name(tmp_path):
    plugin = _plugin(tmp_path, """
        from dendrisim.activations import ACTIVATIONS

        @dendrisim.register_neuron("steadyonly")
        class P(NeuronModel):
            variables = {"soma": "u", "basal": "b", "apical": "a", "rate": "r", "error": "e"}
            offers_apical = True

            @classmethod
            def from_config(cls, name, shape, config, *, options, simulated):
                pop = cls(name, shape)
                pop.activation = ACTIVATIONS.get(config.populations[name].activation)
                return pop

            def integrate(self, s, basal):
                s.basal = s.soma = basal
                s.rate = self.activation.f(basal)
                return s.rate

            def derivative(self, s):
                return self.activation.df(s.soma, s.rate)
        """)
    model = _model(tmp_path, "{type: steadyonly, size: 16}")
    err = _one_paragraph(_cli("check", str(model), "--plugin", str(plugin), "--set", "dynamics.mode=euler",
                              cwd=tmp_path))
    assert "populations.h1.type" in err and "'steadyonly'" in err and "euler" in err and "steady" in err, err


# ---------------------------------------------------------------- a model's code at run time
def test_integrate_that_raises_is_one_paragraph(tmp_path):
    plugin = _plugin(tmp_path, """
        @dendrisim.register_neuron("raises")
        class P(PyramidalPopulation):
            def integrate(self, s, basal):
                raise RuntimeError("boom")
        """)
    err = _one_paragraph(_run(tmp_path, _model(tmp_path, "{type: raises, size: 16}"), plugin))
    assert "'raises'" in err and str(plugin) in err and "integrate" in err and "RuntimeError" in err, err


def test_integrate_with_a_rate_of_the_wrong_shape_is_one_paragraph(tmp_path):
    plugin = _plugin(tmp_path, """
        @dendrisim.register_neuron("badshape")
        class P(PyramidalPopulation):
            def integrate(self, s, basal):
                super().integrate(s, basal)
                s.rate = torch.zeros(basal.shape[0], 3)
                return s.rate
        """)
    err = _one_paragraph(_run(tmp_path, _model(tmp_path, "{type: badshape, size: 16}"), plugin))
    assert "'badshape'" in err and "integrate" in err and "(3" in err and "16" in err, err


def test_integrate_with_a_rate_of_another_dtype_is_one_paragraph(tmp_path):
    plugin = _plugin(tmp_path, """
        @dendrisim.register_neuron("double")
        class P(PyramidalPopulation):
            def integrate(self, s, basal):
                super().integrate(s, basal)
                s.rate = s.rate.double()
                return s.rate
        """)
    err = _one_paragraph(_run(tmp_path, _model(tmp_path, "{type: double, size: 16}"), plugin))
    assert "'double'" in err and "integrate" in err and "float64" in err and "float32" in err, err


def test_a_check_that_raises_is_one_paragraph(tmp_path):
    plugin = _plugin(tmp_path, """
        @dendrisim.register_neuron("badcheck")
        class P(PyramidalPopulation):
            @classmethod
            def check(cls, name, config, options, *, file):
                return 1 / 0
        """)
    err = _one_paragraph(_cli("check", str(_model(tmp_path, "{type: badcheck, size: 16}")), "--plugin",
                              str(plugin), cwd=tmp_path))
    assert "'badcheck'" in err and "check" in err and "ZeroDivisionError" in err, err


def test_a_plugin_variable_is_recorded(tmp_path):
    """Before: a KeyError at the recorder's table of the built-in variables' meanings."""
    plugin = _plugin(tmp_path, """
        @dendrisim.register_neuron("filtered")
        class P(PyramidalPopulation):
            variables = {**PyramidalPopulation.variables, "filtered": "the filtered drive"}

            def integrate(self, s, basal):
                s.filtered = basal
                return super().integrate(s, basal)
        """)
    proc = _run(tmp_path, _model(tmp_path, "{type: filtered, size: 16}"), plugin)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ---------------------------------------------------------------- model files
def test_an_option_with_its_own_yaml_key_can_be_given(tmp_path):
    """Before: the unknown-key check compared the file's keys with the fields' names, the parser
    with their YAML keys, so an option declared with key= could be given under neither."""
    from dendrisim import load_experiment
    from dendrisim.commands import neuron_facts
    from dendrisim.errors import ConfigError
    from dendrisim.plugins import load_plugin

    load_plugin(_plugin(tmp_path, """
        import dataclasses

        @dataclasses.dataclass(frozen=True)
        class O(dendrisim.NeuronOptions):
            tau_d: float = dendrisim.option(2.0, "a time constant", gt=0, key="tau-d")

        @dendrisim.register_neuron("keyed")
        class P(PyramidalPopulation):
            Options = O
        """))
    load_experiment(_model(tmp_path, "{type: keyed, size: 16, tau-d: 3.0}"))
    with pytest.raises(ConfigError, match=r"populations\.h1\.tau-d: -1\.0 must be > 0"):
        load_experiment(_model(tmp_path, "{type: keyed, size: 16, tau-d: -1}"))
    assert [key for key, _, _ in neuron_facts("keyed")["options"]] == ["tau-d"]


def test_an_unknown_type_says_a_plugin_may_register_it(tmp_path):
    err = _one_paragraph(_cli("check", str(_model(tmp_path, "{type: lowpass_never_loaded, size: 16}")), cwd=tmp_path))
    assert "populations.h1.type" in err and "'lowpass_never_loaded'" in err and "--plugin" in err, err


def test_a_plugin_directory_is_not_called_missing(tmp_path):
    err = _one_paragraph(_cli("neurons", "--plugin", str(tmp_path), cwd=tmp_path))
    assert "no such file" not in err and "directory" in err, err


def test_dendrisim_neurons_lists_a_model_named_twice_once(tmp_path):
    proc = _cli("neurons", "pyramidal", "pyramidal", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("pyramidal  (dendrisim)") == 1, proc.stdout


def test_dendrisim_neurons_of_an_unknown_model_says_a_plugin_may_register_it(tmp_path):
    err = _one_paragraph(_cli("neurons", "nosuchmodel", cwd=tmp_path))
    assert "'nosuchmodel'" in err and "pyramidal" in err and "--plugin" in err, err


def test_a_plugin_that_fails_after_registering_can_be_fixed_and_loaded_again(tmp_path):
    """Before: the models it registered before failing stayed registered (from a module that was
    dropped), so loading the fixed file in the same session said their names were taken."""
    from dendrisim.neurons import NEURONS
    from dendrisim.plugins import load_plugin

    body = '@dendrisim.register_neuron("half_loaded")\nclass P(PyramidalPopulation):\n    pass\n'
    plugin = _plugin(tmp_path, body + "raise RuntimeError('a later line')\n")
    with pytest.raises(PluginError, match="RuntimeError"):
        load_plugin(plugin)
    assert "half_loaded" not in NEURONS
    plugin.write_text(HEADER + body)
    assert load_plugin(plugin) == ["neuron model half_loaded"]


def _recurrent_check(tmp_path: Path, model_type: str, body: str) -> str:
    """The shipped recurrent regression model (its loop h -> h) with h of a plugin model, checked
    in this process: the error's text."""
    from dendrisim import load_experiment
    from dendrisim.errors import ConfigError
    from dendrisim.plugins import load_plugin

    load_plugin(_plugin(tmp_path, body))
    table = tmp_path / "table.csv"
    table.write_text("".join(f"{i % 7 * 0.1:.2f},{i % 5 * 0.2:.2f},{i % 3 * 0.3:.2f}\n" for i in range(60)))
    sets = ["task.data_root=null", f"task.file={table}", "populations.h.size=3", "task.sequence_length=3"]
    model = ROOT / "models" / "dll_rnn_electricity_regression.yaml"
    load_experiment(model, sets)  # pyramidal h: fine
    with pytest.raises(ConfigError) as err:
        load_experiment(model, [*sets, f"populations.h.type={model_type}"])
    return str(err.value)


def test_a_model_with_its_own_integrate_in_a_recurrent_loop_is_refused(tmp_path):
    """Before: the network stepped the loop through time as pyramidal neurons, never calling the
    model's integrate (one that raised trained without a word)."""
    err = _recurrent_check(tmp_path, "raises", """
        @dendrisim.register_neuron("raises")
        class P(PyramidalPopulation):
            def integrate(self, s, basal):
                raise RuntimeError("never called")
        """)
    assert "populations.h.type" in err and "'raises'" in err and "recurrent" in err and "integrate" in err, err


def test_a_model_with_its_own_derivative_in_a_recurrent_loop_is_refused(tmp_path):
    err = _recurrent_check(tmp_path, "steeper", """
        @dendrisim.register_neuron("steeper")
        class P(PyramidalPopulation):
            def derivative(self, s):
                return 2 * super().derivative()
        """)
    assert "populations.h.type" in err and "derivative" in err and "recurrent" in err, err
