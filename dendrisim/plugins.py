"""Rules and neuron models users write: a subclass of :class:`dendrisim.PlasticityRule` or
:class:`dendrisim.neurons.NeuronModel`, registered by name.

A rule comes from a Python file named on the command line (``--plugin PATH.py``,
repeatable) or from an installed package's entry point in the group ``dendrisim.rules``;
a model file names it only by its registered name, so a YAML file from elsewhere cannot
run code. :func:`register_rule` checks the contract when the class is defined, and a plugin
that breaks it fails at load time with one paragraph naming the file and what is wrong.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import sys
import traceback
import types
import typing
from pathlib import Path
from typing import Callable, Optional

import torch

from .errors import ConfigError, DendrisimError, brief
from .neurons import BUILTIN_NEURONS, NEURONS, NeuronModel, NeuronOptions
from .plasticity.base import RULES, PlasticityRule, RuleOptions

from .registry import ENTRY_POINT_GROUP  # noqa: E402,F401  (re-exported)
#: the rules that ship with dendrisim (a plugin may not take their names)
BUILTIN = frozenset(RULES.names())
#: registered name -> where it came from (a plugin file, an entry point)
ORIGIN: dict[str, str] = {name: "dendrisim" for name in BUILTIN}
#: registered neuron model -> where it came from
NEURON_ORIGIN: dict[str, str] = {name: "dendrisim" for name in BUILTIN_NEURONS}
#: registered settling scheme -> where it came from (the built-in ones: dendrisim)
SCHEME_ORIGIN: dict[str, str] = {"steady": "dendrisim", "euler": "dendrisim"}
_loading: list[str] = []  # the plugin being loaded, for the origin of what it registers
_entry_points_loaded = False


class PluginError(ConfigError):
    """A plugin that cannot be loaded or breaks the rule contract."""


def register_rule(name: str) -> Callable[[type], type]:
    """Class decorator: check ``cls`` against the rule contract and register it as ``name``.

    .. code-block:: python

        @dendrisim.register_rule("sign_symmetry")
        class SignSymmetry(dendrisim.PlasticityRule):
            def feedback_weight(self, network, proj): ...
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"register_rule({name!r}): a rule name is a word of letters, digits and _ "
                          "(it is what model files write as plasticity.rule)")
    return _registrar(
        "rule", "rule", name, RULES, ORIGIN, problem=lambda cls: contract_problem(cls, name),
        taken=lambda: "a built-in rule" if name in BUILTIN else f"already registered by {ORIGIN.get(name, '?')}",
        guard=lambda cls, origin: _guard(cls, name, origin))


def _registrar(kind: str, noun: str, name: str, registry, origins: dict, *, problem: Callable[[type], Optional[str]],
               taken: Callable[[], str], guard: Callable[[type, str], None]) -> Callable[[type], type]:
    """The class decorator every ``register_*`` returns: check the class (``problem``), refuse a
    name the ``registry`` has (``taken`` says by whom), guard the plugin's hooks and register it,
    remembering the file it came from in ``origins``; every refusal names that file."""
    def decorator(cls: type) -> type:
        origin = _loading[-1] if _loading else getattr(sys.modules.get(cls.__module__), "__file__", cls.__module__)
        text = problem(cls)
        if text:
            raise PluginError(f"{kind} {name!r} ({getattr(cls, '__name__', cls)!r}, in {origin}) {text}")
        if name in registry:
            raise PluginError(f"{kind} name {name!r} (in {origin}) is {taken()}; register the {noun} under another "
                              "name")
        guard(cls, origin)
        registry.register(name)(cls)
        origins[name] = origin
        return cls

    return decorator


#: the keys every population block has (a model's Options may not take them)
POPULATION_KEYS = ("type", "size", "shape", "channels", "activation")
#: what a population instance holds besides its variables (a variable may not replace them)
POPULATION_ATTRIBUTES = ("name", "shape", "size", "training", "activation", "compartments")
#: the class attributes that say what a model offers: each True or False
NEURON_FLAGS = ("clamped", "offers_output", "offers_apical", "takes_nudging", "offers_nudging", "spatial",
                "apical_learns", "prediction_from_basal")
#: the ``dynamics`` keys a simulated model's two conductances may name
CONDUCTANCES = ("g_basal", "g_apical", "g_dendrite", "g_som")


def _variable_problem(cls: type) -> Optional[str]:
    """What is wrong with ``cls.variables`` (None: a dict of names to what they are, with rate)."""
    variables = cls.variables
    if not isinstance(variables, dict) or not variables:
        return (f"declares variables {brief(variables)}, which is not a dict of variable name -> what it is "
                "(e.g. {'soma': 'somatic potential u', 'rate': 'output rate f(u)'})")
    for var, meaning in variables.items():
        if not (isinstance(var, str) and var.isidentifier() and not var.startswith("_")):
            return (f"declares the variable {brief(var)}: a variable's name is a word of letters, digits and _ "
                    "not starting with _ (what recording.populations names)")
        if not isinstance(meaning, str):
            return f"declares the variable {var!r} as {brief(meaning)}; say what it is in a string"
        static = inspect.getattr_static(cls, var, None)
        if (hasattr(NeuronModel, var) or var in POPULATION_ATTRIBUTES
                or isinstance(static, (classmethod, staticmethod)) or inspect.isfunction(static)
                or (isinstance(static, property) and static.fset is None)):
            return (f"declares the variable {var!r}, which is a method or attribute every population of it has "
                    "(a variable is set on the population and would replace it); name the variable otherwise")
    if "rate" not in variables:
        return "declares no 'rate' variable, which projections read from every population"
    return None


def _constants_problem(cls: type) -> Optional[str]:
    """What is wrong with ``cls.constants`` (None: empty, or tau, g_leak and two conductances)."""
    constants = cls.constants
    if constants == ():
        return None
    if not (isinstance(constants, tuple) and all(isinstance(c, str) for c in constants)):
        return (f"declares constants {brief(constants)}; write a tuple of dynamics keys: () (not simulated) or "
                f"('tau', 'g_leak', G1, G2) with G1, G2 among {', '.join(CONDUCTANCES)}")
    if len(constants) != 4 or constants[:2] != ("tau", "g_leak"):
        return (f"declares constants {constants!r}; a simulated model has four: tau, g_leak, then its two "
                f"conductances among {', '.join(CONDUCTANCES)}")
    unknown = [c for c in constants[2:] if c not in CONDUCTANCES]
    if unknown:
        return (f"declares constants {constants!r}, and {unknown[0]!r} is not a conductance of the dynamics block; "
                f"choose among {', '.join(CONDUCTANCES)}")
    return None


def _supported(hint) -> bool:
    """Whether a model file can give an option of type ``hint`` (what the config parser converts)."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, type(None), bool, int, float, str) or origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_supported(a) for a in args)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        try:
            return all(_supported(h) for h in typing.get_type_hints(hint).values())
        except Exception:  # noqa: BLE001 - an unresolvable annotation inside: not something a file can give
            return False
    if origin in (list, tuple):
        return all(_supported(a) for a in args if a is not Ellipsis) and bool(args)
    if origin is dict:
        return len(args) == 2 and args[0] is str and _supported(args[1])
    return False


#: what ``dendrisim.option`` (config.schema.opt) puts in a field's metadata and the parser reads
OPTION_METADATA = frozenset({"doc", "gt", "ge", "le", "lt", "key", "type_text"})


def _options_problem(options: type) -> Optional[str]:
    """What is wrong with a neuron model's Options dataclass (its fields are keys of the population
    block): names taken by the block, types a file cannot give, defaults its own bounds refuse."""
    import typing

    from .config.parse import _check_bounds, convert, yaml_key

    try:
        hints = typing.get_type_hints(options)
    except Exception as err:  # noqa: BLE001 - the plugin's annotation, said in one paragraph
        return f"declares Options whose annotations cannot be resolved ({type(err).__name__}: {_first_line(err)})"
    for f in dataclasses.fields(options):
        key = yaml_key(f)
        if key in POPULATION_KEYS:
            return (f"declares the option {key!r}, which every population block has already "
                    f"({', '.join(POPULATION_KEYS)}); name the option otherwise")
        unknown = sorted(set(f.metadata) - OPTION_METADATA)
        if unknown:
            return (f"declares the option {key!r} with {unknown[0]!r}, which dendrisim.option does not check (it "
                    "takes a default, a doc string and the bounds gt, ge, le, lt); a bound it ignored would let any value "
                    "through")
        bounds = {b: f.metadata[b] for b in ("gt", "ge", "le", "lt") if b in f.metadata}
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in bounds.values()) or not isinstance(
                f.metadata.get("doc", ""), str):
            return (f"declares the option {key!r} with bounds {bounds} or doc {brief(f.metadata.get('doc'))}: the "
                    "bounds gt, ge, le, lt are numbers and the doc a string")
        if not _supported(hints[f.name]):
            return (f"declares the option {key!r} of type {hints[f.name]!r}, which a model file cannot give; use "
                    "bool, int, float, str, a Literal of them, Optional, list[...], tuple[..., ...] or dict[str, ...]")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        try:
            _check_bounds(convert(default, hints[f.name], file=None, path=key), f.metadata, file=None, path=key)
        except ConfigError as err:
            return f"declares the option {key!r} with a default its own type or bounds refuse ({err})"
    return None


#: how the network, the schemes and the graph check call a model's hooks: (hook, instance method,
#: positional arguments, keyword arguments), as a call written out for the message
NEURON_CALLS = (
    ("from_config", False, ("name", "shape", "config"), ("options", "simulated")),
    ("check", False, ("name", "config", "options"), ("file",)),
    ("integrate", True, ("s", "basal"), ()),
    ("derivative", True, ("s",), ()),
    ("prediction", True, ("s", "basal"), ()),
    ("local_error", True, ("rate", "f_predicted"), ("out",)),
    ("step", True, ("s", "u", "basal"), ("dt",)),
    ("describe", True, (), ()),
)


def _signature_problem(cls: type) -> Optional[str]:
    """A hook of ``cls`` that cannot take the arguments it is called with (None: every one can)."""
    for hook, instance, args, kwargs in NEURON_CALLS:
        fn = getattr(cls, hook, None)
        if not callable(fn):
            continue
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin or C callable: nothing to say
            continue
        try:
            signature.bind(*([None] if instance else []), *args, **{k: None for k in kwargs})
        except TypeError as err:
            call = ", ".join([*args, *(["*"] if kwargs else []), *(f"{k}=..." for k in kwargs)])
            return (f"declares {hook}{signature} ({err}), but it is called as {hook}({call}); "
                    f"write {'def' if instance else '@classmethod def'} {hook}"
                    f"({'self' if instance else 'cls'}{', ' if args or kwargs else ''}{call.replace('=...', '')})")
    return None


def neuron_contract_problem(cls: type) -> Optional[str]:
    """What is wrong with a neuron model class, as the end of a sentence (None: nothing)."""
    if not (isinstance(cls, type) and issubclass(cls, NeuronModel)):
        return "is not a subclass of dendrisim.neurons.NeuronModel"
    if not (dataclasses.is_dataclass(cls.Options) and isinstance(cls.Options, type)
            and issubclass(cls.Options, NeuronOptions)):
        return "declares Options that is not a dataclass subclassing dendrisim.neurons.NeuronOptions"
    problem = _options_problem(cls.Options) or _variable_problem(cls)
    if problem:
        return problem
    if not isinstance(cls.summary, str):
        return f"declares summary = {brief(cls.summary)}; write one line (a str) on what the model is"
    for flag in NEURON_FLAGS:
        if not isinstance(getattr(cls, flag), bool):
            return f"declares {flag} = {brief(getattr(cls, flag))}; write True or False"
    if cls.second_input not in ("apical", "soma"):
        return f"declares second_input {cls.second_input!r}; write 'apical' or 'soma'"
    if cls.takes_nudging != (cls.second_input == "soma"):
        return (f"declares takes_nudging = {cls.takes_nudging} with second_input {cls.second_input!r}: a model nudged "
                "through its soma (takes_nudging = True) takes its nudging as its second input (second_input = "
                "'soma'), and only such a model does")
    if cls.takes_nudging and (cls.offers_output or cls.offers_apical):
        return ("declares takes_nudging = True with offers_output or offers_apical: its second input is the nudging, "
                "so it has no apical compartment for the rule's feedback or the output's teacher")
    if (cls.offers_output or cls.offers_nudging or cls.constants) and "soma" not in cls.variables:
        return ("declares no 'soma' variable, which the output's loss, the interneurons it nudges and simulated "
                "compartments read (it offers the output, nudging or simulated constants)")
    problem = _constants_problem(cls)
    if problem:
        return problem
    if not cls.clamped and not callable(getattr(cls, "integrate", None)):
        return "has no integrate(s, basal) method (its free state under a basal drive)"
    problem = _signature_problem(cls)
    if problem:
        return problem
    if (cls.offers_apical or cls.offers_output) and not callable(getattr(cls, "derivative", None)):
        return ("offers an apical compartment but has no derivative(s) method (f'(soma), which the rule's error "
                "δ = f'(soma) ⊙ apical multiplies)")
    missing = [m for m in ("step", "prediction", "local_error") if not callable(getattr(cls, m, None))]
    if cls.constants and missing:
        return (f"declares constants for simulated compartments (dynamics.mode euler) but has no "
                f"{', '.join(missing)} method (the euler scheme calls step, prediction and local_error)")
    return None


#: what the network, the settling schemes and ``--check`` call of a neuron model: a plugin
#: model's own version of any of them is wrapped by :func:`_guard_neuron`
NEURON_HOOKS = ("__init__", "from_config", "check", "new_state", "integrate", "derivative", "prediction", "local_error",
                "step", "describe", "bytes_per_neuron", "extra_repr")


def _rate_problem(like: str):
    """After ``integrate(s, basal)`` / ``step(s, u, basal)``: the rate in the state ``s`` has the
    shape, dtype and device of the argument after it, ``like`` (the basal drive, the soma): the
    projections out of it multiply it by their weights."""
    def problem(self, args, kwargs, out) -> Optional[str]:
        state, ref = (args + (None, None))[:2]
        rate = getattr(state, "rate", None)
        if isinstance(ref, torch.Tensor) and not (isinstance(rate, torch.Tensor) and rate.shape == ref.shape
                                                  and rate.dtype == ref.dtype and rate.device == ref.device):
            got = f"a tensor of {_describe(rate)}" if isinstance(rate, torch.Tensor) else brief(rate)
            return (f"left population {self.name} with the rate {got}; expected a tensor of {_describe(ref)}, "
                    f"like its {like} ([batch, *population shape]); set s.rate, in the state it is given")
        return None
    return problem


def _built_problem(cls, args, kwargs, out) -> Optional[str]:
    """After ``from_config(name, shape, ..., simulated=...)``: a population of the model, with that
    name and shape, an activation unless clamped (the schemes call its f and f'), and its
    constants when ``simulated`` (the euler scheme reads ``compartments``)."""
    from .activations import Activation
    from .neurons import Compartments

    name, shape = (args + (None, None))[:2]
    if not isinstance(out, cls):
        return f"returned {_brief_value(out)} for population {name}; expected an instance of {cls.__name__}"
    if out.name != name or shape is not None and tuple(out.shape) != tuple(int(s) for s in shape):
        return (f"built population {name} as {out.name!r} of shape {tuple(out.shape)}; expected name {name!r} and "
                f"shape {tuple(int(s) for s in shape)} (pass name and shape on to the model's __init__)")
    if not cls.clamped and not isinstance(getattr(out, "activation", None), Activation):
        return (f"built population {name} without an activation: set self.activation to the population's "
                "(dendrisim.activations.ACTIVATIONS.get(config.populations[name].activation)), whose f and f' the "
                "settling schemes call")
    if kwargs.get("simulated") and not cls.clamped and not isinstance(getattr(out, "compartments", None), Compartments):
        return (f"built population {name} without its constants under simulated compartments (simulated=True): "
                "set self.compartments to a dendrisim.neurons.Compartments of its dynamics constants, which the "
                "euler scheme reads")
    return None


def _describe_problem(self, args, kwargs, out) -> Optional[str]:
    return None if isinstance(out, str) else f"returned {_brief_value(out)}; expected one line (a str)"


def _bytes_problem(self, args, kwargs, out) -> Optional[str]:
    return (None if isinstance(out, int) and not isinstance(out, bool) and out >= 0 else
            f"returned {_brief_value(out)}; expected the bytes one neuron takes (an int >= 0)")


#: a plugin model's hooks whose result the network, the schemes or --check use: checked as soon as they return
NEURON_RESULT_CHECKS: dict[str, Callable] = {"integrate": _rate_problem("basal drive"), "step": _rate_problem("soma"),
                                             "from_config": _built_problem, "describe": _describe_problem,
                                             "bytes_per_neuron": _bytes_problem}


def _result_checked(cls: type, hook: str, where: str, problem: Callable, raw) -> None:
    """Set ``cls.hook`` to ``raw`` (its method or classmethod, already guarded) made to check what
    it did with ``problem(self or cls, args, kwargs, result)``: a PluginError names the model and
    the hook."""
    is_class = isinstance(raw, classmethod)
    fn = raw.__func__ if is_class else raw

    @functools.wraps(fn)
    def method(first, *args, **kwargs):
        out = fn(first, *args, **kwargs)
        text = problem(first, args, kwargs, out)
        if text:
            raise PluginError(f"{where}: {hook} {text}")
        return out

    method._dendrisim_checked = True
    setattr(cls, hook, classmethod(method) if is_class else method)


def _guard_neuron(cls: type, name: str, origin: str) -> None:
    """Wrap every hook of a plugin neuron model that is its own code (:data:`NEURON_HOOKS`; the
    built-in models are never wrapped): one that raises stops the run with one paragraph naming
    the model, the hook and the exception (:func:`call_hook`); what its own ``integrate``,
    ``step``, ``from_config``, ``describe`` and ``bytes_per_neuron`` produce is checked as soon as
    they return (:data:`NEURON_RESULT_CHECKS`: a PluginError says what it got instead of a
    traceback from wherever it is used)."""
    where = f"neuron model {name!r} (in {origin})"
    guard_hooks(cls, NEURON_HOOKS, where)
    for hook, problem in NEURON_RESULT_CHECKS.items():
        # what the model builds is checked even when from_config is inherited (from NeuronModel's,
        # which knows nothing of activations or constants); the others only when they are its own
        owner = cls if hook in cls.__dict__ or hook != "from_config" else next(
            k for k in cls.__mro__ if hook in k.__dict__)
        raw = owner.__dict__.get(hook)
        fn = raw.__func__ if isinstance(raw, classmethod) else raw
        if callable(fn) and not getattr(fn, "_dendrisim_checked", False):
            _result_checked(cls, hook, where, problem, raw)


def register_neuron(name: str) -> Callable[[type], type]:
    """Class decorator: check ``cls`` against the neuron-model contract and register it as the
    population type ``name``.

    .. code-block:: python

        @dendrisim.register_neuron("lowpass_pyramidal")
        class LowPassPyramidal(dendrisim.neurons.PyramidalPopulation):
            ...
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"register_neuron({name!r}): a neuron model's name is a word of letters, digits and _ "
                          "(it is what model files write as populations.NAME.type)")
    return _registrar(
        "neuron model", "model", name, NEURONS, NEURON_ORIGIN, problem=neuron_contract_problem,
        taken=lambda: ("a built-in neuron model" if name in BUILTIN_NEURONS
                       else f"already registered by {NEURON_ORIGIN.get(name, '?')}"),
        guard=lambda cls, origin: _guard_neuron(cls, name, origin))


def register_scheme(name: str) -> Callable[[type], type]:
    """Class decorator: register a settling scheme (a subclass of
    :class:`dendrisim.settling.SettlingScheme`) as ``dynamics.mode: name``. A plugin file that
    registers one loads with ``--plugin`` as a rule file does; the class is checked against the
    scheme contract (:func:`_scheme_problem`) and its hooks (``present``, ``_present``,
    ``describe``, ``check``) raise in one paragraph naming it and its file, as a plugin rule's do."""
    from .settling import SCHEMES

    if not isinstance(name, str) or not name.isidentifier():
        where = f" (in {_loading[-1]})" if _loading else ""
        raise PluginError(f"register_scheme({brief(name)}){where}: a scheme's name is a word of letters, digits and _ "
                          "(it is what model files write as dynamics.mode)")
    return _registrar(
        "settling scheme", "scheme", name, SCHEMES, SCHEME_ORIGIN, problem=_scheme_problem,
        taken=lambda: (f"already registered by {SCHEME_ORIGIN.get(name, 'another module')} "
                       f"({', '.join(SCHEMES.names())} are)"),
        guard=lambda cls, origin: guard_hooks(cls, SCHEME_HOOKS, f"settling scheme {name!r} (in {origin})",
                                              SCHEME_RETURN_CHECKS))


#: a scheme's capabilities (class attributes) that must be booleans
_SCHEME_FLAGS = ("simulates_compartments", "runs_relaxation", "runs_circuits")


def _scheme_problem(cls) -> Optional[str]:
    """What is wrong with ``cls`` as a settling scheme, as the end of a sentence, or None: a
    SettlingScheme subclass with its own ``_present``, ``check`` a classmethod, boolean
    capabilities, ``trace_steps`` None or a list of step numbers, and ``Options`` a dataclass
    subclassing SchemeOptions whose fields all have defaults and do not take the names of the
    ``dynamics:`` block's shared keys."""
    from .config.parse import yaml_key
    from .config.schema import DynamicsConfig
    from .settling import SchemeOptions, SettlingScheme

    if not (isinstance(cls, type) and issubclass(cls, SettlingScheme)):
        return "is not a subclass of dendrisim.settling.SettlingScheme"
    if cls._present is SettlingScheme._present:
        return "defines no _present(network, rule, state, capture), the presentation itself"
    if not isinstance(inspect.getattr_static(cls, "check"), (classmethod, staticmethod)):
        return "defines check as a plain method; it is a classmethod check(cls, config, graph, *, file) (@classmethod)"
    flags = [f for f in _SCHEME_FLAGS if not isinstance(getattr(cls, f), bool)]
    if flags:
        return f"sets {flags[0]} = {brief(getattr(cls, flags[0]))}; it is True or False"
    steps = cls.trace_steps
    if steps is not None and not (isinstance(steps, (list, tuple)) and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps)):
        return f"sets trace_steps = {brief(steps)}; it is None or a list of step numbers (ints >= 0)"
    options = cls.Options
    if not (isinstance(options, type) and dataclasses.is_dataclass(options) and issubclass(options, SchemeOptions)):
        return "declares Options that is not a dataclass subclassing dendrisim.settling.SchemeOptions"
    shared = {yaml_key(f) for f in dataclasses.fields(DynamicsConfig) if not f.metadata.get("rest")}
    try:
        hints = typing.get_type_hints(options)
    except Exception as err:  # noqa: BLE001 - an annotation that does not resolve, said in one paragraph
        return f"declares Options whose annotations do not resolve ({type(err).__name__}: {_first_line(err)})"
    for field in dataclasses.fields(options):
        hint = hints.get(field.name, typing.Any)
        if not _parsable(hint):
            shown = hint.__name__ if isinstance(hint, type) else hint
            return (f"declares option {field.name!r} of type {shown}, which a model file cannot "
                    "write; an option is bool, int, float, str, a Literal, a list[...] or dict[str, ...] of them, "
                    "or Optional[...] of one")
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            return (f"declares option {field.name!r} without a default; every option of the dynamics: block has one "
                    "(dendrisim.option(default, ...))")
        if field.name in shared:
            return (f"declares option {field.name!r}, a key the dynamics: block already has for every scheme "
                    f"({', '.join(sorted(shared))}); give the option another name")
    return _default_problem(options)


def _default_problem(options: type) -> Optional[str]:
    """Whether each option's default passes the option's own type and bounds (what a model file's
    value must pass), as the end of a sentence, or None."""
    from .config.parse import parse

    try:
        defaults = options()
        values = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(options)
                  if not dataclasses.is_dataclass(getattr(defaults, f.name))}
        parse(options, values, path="dynamics")
    except ConfigError as err:
        return f"declares an option whose own default is refused ({err}); give it a default within its bounds"
    except Exception as err:  # noqa: BLE001 - whatever the parser makes of it, in one paragraph
        return f"declares an option whose default cannot be checked ({type(err).__name__}: {_first_line(err)})"
    return None


def _registered() -> set[str]:
    """Everything a plugin file can register (what load_plugin compares): rules by name, neuron
    models and settling schemes by kind and name."""
    from .settling import SCHEMES

    return (set(RULES.names()) | {f"neuron model {n}" for n in NEURONS.names()}
            | {f"settling scheme {n}" for n in SCHEMES.names()})


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def _projection_in(err: BaseException, origin: str):
    """The projection the plugin was handling when it raised: a local of its innermost frame
    in its own file that has a ``name`` and a ``weight`` (None when there is none)."""
    tb, found = err.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == origin:
            for value in tb.tb_frame.f_locals.values():
                if hasattr(value, "weight") and isinstance(getattr(value, "name", None), str) and hasattr(value, "source"):
                    found = value
        tb = tb.tb_next
    return found


def _describe(t) -> str:
    return f"shape {tuple(t.shape)}, {str(t.dtype).replace('torch.', '')} on {t.device}"


#: every method of PlasticityRule the loop, the builder or ``--check`` calls: a plugin rule's own
#: version of any of them is wrapped by :func:`_guard` (dendrisim's own rules never are)
HOOKS = ("__init__", "serves", "default_for", "check", "learnable_projections", "feedback_gain", "feedback_weight",
         "feeds_back", "apical_input", "truncate", "relaxed", "top_down", "gain_and_clip", "compute_updates",
         "start_epoch", "after_update", "param_groups", "projection_state", "recordables_for", "governance",
         "feedback_label", "feedback_pathway", "epoch_summary", "clip_names", "relax", "get_extra_state",
         "set_extra_state")
#: what the loop calls of a settling scheme (a user's scheme, registered from Python, is wrapped too)
SCHEME_HOOKS = ("__init__", "present", "_present", "describe", "check")


def hook_error(where: str, hook: str, err: BaseException, detail: str = "") -> PluginError:
    """The one paragraph for user code (a plugin rule, a settling scheme) whose ``hook`` raised
    ``err``: who, which hook, the exception and its first line."""
    if isinstance(err, SystemExit):
        return PluginError(f"{where}: {hook} called sys.exit({err.code!r}){detail}; a hook returns or raises")
    return PluginError(f"{where}: {hook} raised {type(err).__name__}{detail}: {_first_line(err)}")


def call_hook(where: str, hook: str, fn: Callable, *args, detail: Callable[[BaseException], str] = lambda err: ""):
    """``fn(*args)``, user code: what it raises (but a DendrisimError, which already says what is
    wrong, and KeyboardInterrupt) becomes :func:`hook_error`'s PluginError, so that the run stops
    cleanly (checkpoint and recording closed) with one paragraph instead of a traceback."""
    try:
        return fn(*args)
    except DendrisimError as err:
        if getattr(err, "misused_by_caller", False):  # a call the user's code got wrong (free_state's perturb): name it
            raise PluginError(f"{where}: {hook}: {err}") from None
        raise
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the user's own bug, said in one paragraph
        raise hook_error(where, hook, err, detail(err)) from None


def _projection_arg(args) -> str:
    proj = next((a for a in args if hasattr(a, "weight") and isinstance(getattr(a, "name", None), str)), None)
    return f" for projection {proj.name}" if proj is not None else ""


def _wrapped(cls: type, hook: str, where: str, checks: dict[str, Callable]) -> None:
    """Replace ``cls.hook`` (the plugin's own, a plain method or a classmethod) by one that goes
    through :func:`call_hook` and whose result ``checks[hook]`` (if any) checks."""
    owner = next(k for k in cls.__mro__ if hook in k.__dict__)
    raw = owner.__dict__[hook]
    is_class = isinstance(raw, classmethod)
    fn = raw.__func__ if is_class else raw
    if not callable(fn) or getattr(fn, "_dendrisim_hook", False):
        return

    check = checks.get(hook)

    @functools.wraps(fn)
    def method(first, *args, **kwargs):
        out = call_hook(where, hook, lambda: fn(first, *args, **kwargs), detail=lambda err: _projection_arg(args))
        problem = check(out, args) if check is not None else None
        if problem:
            raise PluginError(f"{where}: {hook} returned {_brief_value(out)}; {problem}")
        return out

    method._dendrisim_hook = True
    setattr(cls, hook, classmethod(method) if is_class else method)


def _brief_value(value) -> str:
    text = repr(value) if not isinstance(value, torch.Tensor) else f"a tensor of {_describe(value)}"
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}" if not isinstance(
        value, torch.Tensor) else text


def _apical_problem(out, args) -> Optional[str]:
    """``apical_input(network, pop, state)`` and ``top_down``: None, or a floating tensor of
    the population's shape (what the settling scheme multiplies by f'(soma))."""
    if out is None:
        return None
    pop = args[1] if len(args) > 1 else None
    state = args[2] if len(args) > 2 else None
    own = state.get(getattr(pop, "name", None)) if isinstance(state, dict) else None
    like = getattr(own, "rate", None)
    if not isinstance(out, torch.Tensor):
        return "expected None or a tensor of the population's shape"
    if isinstance(like, torch.Tensor) and (out.shape != like.shape or out.dtype != like.dtype
                                           or out.device != like.device):
        return f"expected None or a tensor like the population's rate ({_describe(like)})"
    return None


def _groups_problem(out, args) -> Optional[str]:
    """``param_groups(lr)``: a list of dicts, each with a ``params`` list of tensors."""
    if not isinstance(out, (list, tuple)) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), (list, tuple))
            and all(isinstance(p, torch.Tensor) for p in g["params"]) for g in out):
        return "expected a list of optimizer parameter groups, dicts with a 'params' list of tensors"
    return None


def _summary_problem(out, args) -> Optional[str]:
    """``epoch_summary()``: a dict of column names (str) for the epoch's metrics row (what the
    values may be is checked where the checkpoint is written, naming the hook too)."""
    if not isinstance(out, dict) or not all(isinstance(k, str) for k in out):
        return "expected a dict of metric names (str) to values, the columns it adds to the epoch's metrics row"
    return None


def _parsable(hint) -> bool:
    """Whether a model file's value can be checked against ``hint`` (what ``config.parse`` reads)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, type(None), bool, int, float, str) or origin is typing.Literal:
        return True
    if dataclasses.is_dataclass(hint):
        return True
    if origin in (typing.Union, types.UnionType, list, tuple):
        return bool(args) and all(_parsable(a) for a in args if a is not Ellipsis)
    if origin is dict:
        return len(args) == 2 and _parsable(args[1])
    return False


def _presentation_problem(out, args) -> Optional[str]:
    """A settling scheme's ``_present`` (and ``present``): a ``dendrisim.settling.Presentation``."""
    from .settling import Presentation

    if not isinstance(out, Presentation):
        return "expected a dendrisim.settling.Presentation (return super()._present(...) or Presentation())"
    return None


def _describe_problem(out, args) -> Optional[str]:
    """A settling scheme's ``describe(network)``: a non-empty list of lines (str)."""
    if not (isinstance(out, (list, tuple)) and out and all(isinstance(line, str) for line in out)):
        return "expected a non-empty list of lines (str) saying what the scheme does, for --check and a run's start"
    return None


#: a plugin rule's hooks whose returned value the loop uses: what it must be, checked as soon as it returns
RETURN_CHECKS: dict[str, Callable] = {"apical_input": _apical_problem, "top_down": _apical_problem,
                                      "param_groups": _groups_problem, "epoch_summary": _summary_problem}
#: the same for a settling scheme's hooks
SCHEME_RETURN_CHECKS: dict[str, Callable] = {"_present": _presentation_problem, "present": _presentation_problem,
                                             "describe": _describe_problem}


def guard_hooks(cls: type, hooks, where: str, checks: Optional[dict[str, Callable]] = None) -> None:
    """Wrap each of ``hooks`` that is the user's own code in ``cls`` (not dendrisim's) with
    :func:`call_hook`, once, its result checked by ``checks`` (by hook name; none by default):
    the one mechanism for plugin rules, neuron models and settling schemes."""
    for hook in hooks:
        if _is_users(cls, hook):
            _wrapped(cls, hook, where, checks or {})


def _is_users(cls: type, hook: str) -> bool:
    """Whether ``cls.hook`` is the plugin's code (not dendrisim's, torch's or object's)."""
    owner = next((k for k in cls.__mro__ if hook in k.__dict__), None)
    module = getattr(owner, "__module__", "") or ""
    return owner is not None and owner is not object and not module.startswith(("dendrisim.", "torch.", "builtins"))


def _guard(cls: type, name: str, origin: str) -> None:
    """Wrap every hook of a plugin rule (:data:`HOOKS`; the built-in rules are never wrapped):
    one that raises stops the run cleanly with one paragraph naming the rule, the hook and the
    exception (:func:`call_hook`). ``compute_updates`` and ``feedback_weight`` are also checked:
    what the plugin computes must have the shape, dtype and device of what it stands for, or a
    PluginError names the rule, the projection, and what was expected and got, instead of a
    torch traceback from deep inside the step."""
    updates, feedback = cls.compute_updates, cls.feedback_weight
    where = f"rule {name!r} (in {origin})"

    def compute_updates(self, network, state=None) -> None:
        def detail(err):
            proj = _projection_in(err, origin)
            return (f" for projection {proj.name}; its update must match its weight ({_describe(proj.weight)})"
                    if proj is not None else "")

        call_hook(where, "compute_updates", updates, self, network, state, detail=detail)
        for proj in self.learnable_projections(network):
            for what in ("weight", "bias"):
                param = getattr(proj, what, None)
                grad = getattr(param, "grad", None)
                if grad is None:
                    continue
                if grad.shape != param.shape or grad.dtype != param.dtype or grad.device != param.device:
                    raise PluginError(f"{where}: the update of projection {proj.name} ({what}) has {_describe(grad)}; "
                                      f"expected {_describe(param)}, as its {what}")

    def feedback_weight(self, network, proj):
        out = call_hook(where, "feedback_weight", feedback, self, network, proj,
                        detail=lambda err: f" for projection {proj.name}")
        if out is None:
            if proj.has_weight and proj.source != network.input_name and self.feeds_back(proj):
                raise PluginError(f"{where}: feedback_weight returned None for projection {proj.name}, which the rule "
                                  "feeds back (its feeds_back is true): the settling scheme would carry the error "
                                  "through nothing. Return its feedback weights, or leave it out of the feedback "
                                  "pathway (carries_feedback = False, or an override of feeds_back)")
            return out
        if not isinstance(out, torch.Tensor):
            raise PluginError(f"{where}: feedback_weight returned {type(out).__name__} for projection {proj.name}; "
                              "expected a tensor or None")
        like = proj.transported() if proj.has_weight and getattr(proj, "weight", None) is not None else None
        if like is not None and not like.is_meta:
            if out.shape != like.shape or out.dtype != like.dtype or out.device != like.device:
                raise PluginError(f"{where}: feedback_weight of projection {proj.name} has {_describe(out)}; "
                                  f"expected {_describe(like)}, the shape of its weight in the feedback layout "
                                  "(proj.transported())")
        return out

    compute_updates.__doc__, feedback_weight.__doc__ = updates.__doc__, feedback.__doc__
    guard_hooks(cls, [h for h in HOOKS if h not in ("compute_updates", "feedback_weight")], where, RETURN_CHECKS)
    cls.compute_updates, cls.feedback_weight = compute_updates, feedback_weight
    compute_updates._dendrisim_hook = feedback_weight._dendrisim_hook = True


def contract_problem(cls: type, name: str) -> Optional[str]:
    """What ``cls`` lacks to be a rule, or None."""
    if not (isinstance(cls, type) and issubclass(cls, PlasticityRule)):
        return "is not a subclass of dendrisim.PlasticityRule"
    if cls.feedback_weight is PlasticityRule.feedback_weight:
        return ("has no feedback_weight(self, network, proj) hook: it must say which weights carry each "
                "projection's target error back to its source (None where there are none)")
    options = cls.Options
    if not (dataclasses.is_dataclass(options) and isinstance(options, type) and issubclass(options, RuleOptions)):
        return "has an Options that is not a dataclass subclassing dendrisim.RuleOptions"
    required = [f.name for f in dataclasses.fields(options) if f.name != "rule"
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        return (f"has Options fields without a default ({', '.join(required)}): every option needs one, so that "
                "a model file may leave it out (use dendrisim.option(default, 'what it means'))")
    if cls.__init__ is not PlasticityRule.__init__:
        params = inspect.signature(cls.__init__).parameters
        if "projections" not in params or params["projections"].kind is not inspect.Parameter.KEYWORD_ONLY:
            return ("overrides __init__ without the keyword-only argument projections: use "
                    "__init__(self, network, options, *, projections=None) and pass it to super().__init__")
    names = {f.name for f in dataclasses.fields(options)}
    for key, spec in dict(cls.tunables).items():
        if key.split(".")[0] not in names:  # a dotted key reaches into a mapping option (feedback_init.normal.std)
            return f"declares the tunable {key!r}, which is not one of its options ({', '.join(sorted(names))})"
        if not (isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(v, (int, float)) for v in spec[:2])
                and spec[0] < spec[1] and (len(spec) == 2 or spec[2] in ("log", "int"))):
            return f"declares the tunable {key!r} as {spec!r}; write (low, high) or (low, high, 'log' | 'int')"
    if not all(isinstance(v, str) for v in cls.projection_recordables):
        return "declares projection_recordables that are not names"
    return None


def load_plugin(path: str | Path) -> list[str]:
    """Import the rule file ``path``; returns the names it registered."""
    path = Path(path)
    if path.is_dir():
        raise PluginError(f"--plugin {path}: is a directory; name a Python file (PATH.py) that registers rules or "
                          "neuron models")
    if not path.is_file():
        raise PluginError(f"--plugin {path}: no such file (looked at {path.resolve()})")
    before = _registered()
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    module_name = f"dendrisim_plugin_{path.stem}_{digest}"
    if module_name in sys.modules:  # loaded already (a resumed run names it again)
        return []
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"--plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    _loading.append(str(path))
    try:
        spec.loader.exec_module(module)
    except PluginError:
        del sys.modules[module_name]
        _unregister_since(before)
        raise
    except (Exception, SystemExit) as err:  # noqa: BLE001 - whatever the plugin raises (or exits), in one paragraph
        del sys.modules[module_name]
        _unregister_since(before)
        frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
        where = f" at line {frames[-1].lineno} ({frames[-1].line.strip()})" if frames and frames[-1].line else ""
        if isinstance(err, SystemExit):
            raise PluginError(f"--plugin {path}: importing it called sys.exit({err.code!r}){where}; a plugin file "
                              "only defines and registers rules and neuron models") from None
        raise PluginError(f"--plugin {path}: importing it raised {type(err).__name__}{where}: "
                          f"{_first_line(err)}") from None
    finally:
        _loading.pop()
    added = sorted(_registered() - before)
    if not added:
        raise PluginError(f"--plugin {path}: registers no rule, neuron model or settling scheme; decorate a "
                          "PlasticityRule subclass with @dendrisim.register_rule('name'), a NeuronModel subclass "
                          "with @dendrisim.register_neuron('name') or a SettlingScheme subclass with "
                          "@dendrisim.register_scheme('name')")
    return added


def _unregister_since(before: set[str]) -> None:
    """Forget what a plugin file registered before it failed to load (``before``: what was
    registered until then, as :func:`load_plugin` lists it): its module is gone, and a session
    that fixes the file and loads it again must not find its names taken by the broken one."""
    for name in set(RULES.names()) - before:
        RULES.unregister(name)
        ORIGIN.pop(name, None)
    for name in set(NEURONS.names()) - {n.removeprefix("neuron model ") for n in before}:
        NEURONS.unregister(name)
        NEURON_ORIGIN.pop(name, None)


def load_plugins(paths) -> list[str]:
    return [name for path in paths for name in load_plugin(path)]


def load_entry_points() -> None:
    """Rules of installed packages: each entry point of the group ``dendrisim.rules`` names a
    module (whose import registers its rules) or a rule class (registered under the entry
    point's name). Loaded once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}" + (f" of {ep.dist.name}" if getattr(ep, "dist", None) else "")
        _loading.append(origin)
        try:
            obj = ep.load()
        except PluginError:
            raise
        except SystemExit as err:
            raise PluginError(f"{origin}: importing it called sys.exit({err.code!r}); a plugin only defines and "
                              "registers rules") from None
        except Exception as err:  # noqa: BLE001
            raise PluginError(f"{origin}: importing it raised {type(err).__name__}: {_first_line(err)}") from None
        finally:
            _loading.pop()
        if isinstance(obj, type) and ep.name not in RULES:
            _loading.append(origin)
            try:
                register_rule(ep.name)(obj)
            finally:
                _loading.pop()


def rules_of(path: str | Path) -> list[str]:
    """The rule names the plugin file ``path`` registered in this process (by resolved path)."""
    resolved = str(Path(path).resolve())
    return sorted(name for name, origin in ORIGIN.items()
                  if origin != "dendrisim" and not origin.startswith("entry point ")
                  and str(Path(origin).resolve()) == resolved)
