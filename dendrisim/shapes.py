"""Every population's shape, inferred from the model file and the data (before any tensor).

The input population follows the data's sample shape, the output the task's number of
outputs; a pyramidal population fed by conv2d, pool or embedding projections takes the
shape they give (and must agree with its own ``size``/``shape``/``channels``), any other its
``size`` or ``shape``. Each mismatch is a ConfigError naming the file and the key.
"""
from __future__ import annotations

import math
from typing import Optional

import networkx as nx

from .config.graph import build_graph, feedforward_graph, model_of
from .config.loader import Experiment
from .errors import ConfigError
from .projections import CONNECTIVITY, kernel_extent


def population_shapes(experiment: Experiment, *, input_shape: tuple[int, ...], output_size: int,
                      vocabulary: Optional[tuple[int, int]] = None) -> dict[str, tuple[int, ...]]:
    """Population name -> shape, for samples of ``input_shape``, ``output_size`` outputs and
    the task's word vectors ``vocabulary`` (``(words, dim)``, for embedding projections).
    Populations are resolved in feedforward order, so each sees its sources' shapes."""
    cfg, file = experiment.config, experiment.file
    ff = feedforward_graph(build_graph(cfg))
    input_name = next(n for n, p in cfg.populations.items() if model_of(p).clamped)
    output_name = next(n for n in ff if ff.out_degree(n) == 0 and model_of(cfg.populations[n]).offers_output)
    index = {proj.name: i for i, proj in enumerate(cfg.projections)}
    shapes: dict[str, tuple[int, ...]] = {}
    for name in nx.lexicographical_topological_sort(ff):
        pop = cfg.populations[name]
        if model_of(pop).takes_nudging:
            continue  # second pass: from the population that nudges it (which may come later)
        if name == input_name:
            shapes[name] = _resolve_shape(name, pop, input_shape, None, file)
        else:
            incoming = [p for p in cfg.projections if p.target == name]
            shapes[name] = _infer_shape(name, pop, incoming, shapes, index, vocabulary,
                                        output_size if name == output_name else None, file)
    for name, pop in cfg.populations.items():
        if model_of(pop).takes_nudging:
            shapes[name] = _interneuron_shape(name, pop, cfg.projections, shapes, index, file)
    return shapes


def _interneuron_shape(name: str, pop, projections, shapes, index, file: str) -> tuple[int, ...]:
    """An interneuron's shape: that of the population that nudges it one to one (the graph
    check made sure there is exactly one); ``size``/``shape`` must agree with it."""
    (nudge,) = [p for p in projections if p.target == name and p.compartment == "soma"]
    source = shapes[nudge.source]
    n = math.prod(source)
    through = f"which nudges it one to one through projections[{index[nudge.name]}]"
    if isinstance(pop.size, int) and pop.size != n:
        raise ConfigError(f"{pop.size} does not match {nudge.source} ({n} neurons), {through}; write size: auto",
                          file=file, path=f"populations.{name}.size")
    if pop.shape is not None and math.prod(pop.shape) != n:
        raise ConfigError(f"{list(pop.shape)} does not match {nudge.source} ({n} neurons, shape {list(source)}), "
                          f"{through}; write size: auto", file=file, path=f"populations.{name}.shape")
    return tuple(pop.shape) if pop.shape is not None else source


def _infer_shape(name: str, pop, incoming, shapes, index, vocabulary, classes, file: str) -> tuple[int, ...]:
    """A pyramidal population's shape: from its conv2d/pool/embedding inputs when it has
    any (they must agree), else from ``size``/``shape``."""
    where = f"populations.{name}"
    proposals = []
    for proj in incoming:
        at = f"projections[{index[proj.name]}]"
        if proj.connectivity == "dense":
            continue  # any shape of the right size (recurrent sources may come later in the order)
        pre = shapes[proj.source]
        if proj.connectivity in ("conv2d", "maxpool", "avgpool"):
            if len(pre) != 3:
                raise ConfigError(f"{proj.connectivity} needs a source of shape [channels, height, width]; "
                                  f"{proj.source!r} has shape {list(pre)}", file=file, path=at)
            if proj.connectivity == "conv2d":
                channels = pop.channels or (pop.shape[0] if pop.shape else None)
                if channels is None:
                    raise ConfigError(f"{name!r} is fed by the conv2d projection {proj.name}: give its number of "
                                      "feature maps as channels: N", file=file, path=where)
            else:
                channels = pre[0]  # a pool keeps the source's channels
            _check_window_fits(proj, pre, file=file, at=at)
            shape = CONNECTIVITY.get(proj.connectivity).output_shape(proj, pre, channels)
            if min(shape) < 1:
                raise ConfigError(f"{proj.connectivity} with kernel {proj.kernel}, stride {proj.stride} and padding "
                                  f"{proj.padding} leaves nothing of the {list(pre)} map of {proj.source!r}",
                                  file=file, path=at)
            proposals.append((proj.name, shape))
        elif proj.connectivity == "embedding":
            if vocabulary is None:
                raise ConfigError("an embedding projection needs a task with a vocabulary (type: sentences, or "
                                  "charlm with input: ids)",
                                  file=file, path=f"{at}.connectivity")
            if len(pre) != 1:
                raise ConfigError(f"an embedding reads token ids of shape [length]; {proj.source!r} has shape "
                                  f"{list(pre)}", file=file, path=at)
            # a sentence of ids becomes a [1, length, dim] map; one id per time step a [dim] vector
            proposals.append((proj.name, (vocabulary[1],) if pre == (1,) else (1, pre[0], vocabulary[1])))
    if not proposals:
        if pop.channels is not None:
            raise ConfigError("channels applies to populations fed by conv2d projections", file=file,
                              path=f"{where}.channels")
        return _resolve_shape(name, pop, None, classes, file)
    first, shape = proposals[0]
    for other, s in proposals[1:]:
        if s != shape:
            raise ConfigError(f"its inputs disagree: {first} gives {list(shape)}, {other} gives {list(s)}",
                              file=file, path=where)
    if pop.shape is not None and tuple(pop.shape) != shape:
        raise ConfigError(f"{list(pop.shape)} does not match its input {first}, which gives {list(shape)}",
                          file=file, path=f"{where}.shape")
    if pop.channels is not None and pop.channels != shape[0]:
        raise ConfigError(f"{pop.channels} channels, but {first} gives {shape[0]}", file=file, path=f"{where}.channels")
    if isinstance(pop.size, int) and pop.size != math.prod(shape):
        raise ConfigError(f"{pop.size} does not match its input {first}, which gives {list(shape)} = "
                          f"{math.prod(shape)} neurons", file=file, path=f"{where}.size")
    if classes is not None and math.prod(shape) != classes:
        raise ConfigError(f"its input {first} gives {list(shape)}, but the task needs {classes} output neurons",
                          file=file, path=where)
    return shape


def _check_window_fits(proj, pre: tuple[int, ...], *, file: str, at: str) -> None:
    """A kernel extent larger than its (padded) source map: name the map's size and ``full``."""
    kernel, padding = kernel_extent(proj.kernel, pre), CONNECTIVITY.get(proj.connectivity).geometry(proj, pre)[2]
    room = [pre[1 + i] + 2 * padding[i] for i in range(2)]
    too_big = [i for i in range(2) if kernel[i] > room[i]]
    if not too_big:
        return
    axes = ("height", "width")
    sizes = ", ".join(f"{axes[i]} {pre[1 + i]}" + (f" + 2 x padding {padding[i]}" if padding[i] else "") for i in too_big)
    spelled = [("full" if i in too_big else v) for i, v in enumerate(kernel)]
    raise ConfigError(
        f"the {proj.connectivity} kernel {list(kernel)} is larger than the {list(pre)} map of {proj.source!r} "
        f"({sizes}); a kernel extent may be at most the map's. To span the whole {' and '.join(axes[i] for i in too_big)} "
        f"whatever the source's size (word vectors of any width, say), write kernel: [{', '.join(map(str, spelled))}]",
        file=file, path=f"{at}.kernel")


def _resolve_shape(name: str, pop, data_shape: Optional[tuple[int, ...]], classes: Optional[int], file: str) -> tuple[int, ...]:
    where = f"populations.{name}"
    if data_shape is not None:  # the input population follows the data
        if pop.shape is not None and tuple(pop.shape) != tuple(data_shape):
            raise ConfigError(f"{list(pop.shape)} does not match the data, whose samples have shape "
                              f"{list(data_shape)}; write that or size: auto", file=file, path=f"{where}.shape")
        if isinstance(pop.size, int) and pop.size != math.prod(data_shape):
            raise ConfigError(f"{pop.size} does not match the data, whose samples have {math.prod(data_shape)} "
                              f"values (shape {list(data_shape)}); write that or size: auto", file=file, path=f"{where}.size")
        return tuple(data_shape)
    if classes is not None:  # the output population follows the task
        if pop.size not in ("auto", classes) and pop.shape is None:
            raise ConfigError(f"{pop.size} does not match the task, which needs {classes} output neurons; "
                              "write that or size: auto", file=file, path=f"{where}.size")
        if pop.shape is not None and math.prod(pop.shape) != classes:
            raise ConfigError(f"{list(pop.shape)} does not match the task, which needs {classes} output neurons",
                              file=file, path=f"{where}.shape")
        return (classes,) if pop.shape is None else tuple(pop.shape)
    if pop.shape is not None:
        return tuple(pop.shape)
    return (int(pop.size),)
