"""The model file as frozen dataclasses: one class per YAML block.

The ``task`` and ``plasticity`` blocks are checked by the options class of the task or
rule they name (see ``dendrisim.tasks`` and ``dendrisim.plasticity``), so each task and
rule documents and validates its own keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from ..fields import opt, req  # noqa: F401  (every options class makes its fields with these)

Size = Union[int, Literal["auto"]]
#: neurons of one population at most (2^28): a dense projection between two such stays
#: within the int64 byte counts of torch's storage
MAX_NEURONS = 2**28


@dataclass(frozen=True)
class PopulationConfig:
    # any value: a type that is not a registered model's name (a number, a list) is refused by
    # the graph check with the registered models listed
    type: Any = opt(
        "pyramidal", "the neuron model: input (clamped data), pyramidal (soma, basal and apical compartments), "
                     "interneuron (soma and dendrite; nudged one to one by the population it predicts through a "
                     "compartment: soma projection) or a model registered with dendrisim.register_neuron "
                     "(dendrisim neurons lists them)", type_text="'input', 'pyramidal', 'interneuron' or a registered "
                                                                 "neuron model")
    size: Optional[Size] = opt(None, "number of neurons, or auto (taken from the task; an interneuron population's from "
                                     "the population that nudges it)", le=MAX_NEURONS)
    shape: Optional[tuple[int, ...]] = opt(None, "shape of one sample, e.g. [1, 28, 28] (instead of size)")
    channels: Optional[int] = opt(
        None, "feature maps of a population fed by conv2d projections; height and width follow from them", gt=0,
        le=MAX_NEURONS)
    activation: str = opt("tanh", "tanh, sigmoid, relu, leaky_relu, linear or softmax (output only); interneurons also "
                                  "take auto: the activation of the population that nudges them")
    options: dict[str, Any] = opt(
        {}, "the other keys of the block: the neuron model's own options (dendrisim neurons NAME lists them), "
            "checked by the model", rest=True)


Pair = Union[int, tuple[int, ...]]
CONNECTIVITIES = ("dense", "conv2d", "maxpool", "avgpool", "embedding", "one_to_one")


@dataclass(frozen=True)
class ProjectionConfig:
    source: str = req("presynaptic population", key="from")
    target: str = req("postsynaptic population", key="to")
    compartment: Literal["basal", "apical", "soma"] = opt(
        "basal", "compartment of the target it drives: basal (the feedforward graph), apical (explicit top-down input "
                 "from a population above, or lateral input from interneurons; adds to what the rule feeds back) or "
                 "soma (nudging of an interneuron by the population it predicts: one to one, no weights)")
    kind: Literal["feedforward", "recurrent"] = opt(
        "feedforward", "feedforward (same time step) or recurrent (the source's rate one time step earlier; "
        "feedback pathways are built by the rule)")
    connectivity: Literal["dense", "conv2d", "maxpool", "avgpool", "embedding", "one_to_one"] = opt(
        "dense", "dense (all to all; flattens a spatial source), conv2d, maxpool, avgpool (fixed, no weights), "
        "embedding (token ids -> the task's word vectors) or one_to_one (neuron i to neuron i, no weights: the "
        "somatic nudging of interneurons; implied by compartment: soma)")
    kernel: Optional[Union[int, tuple[Union[int, Literal["full"]], ...], Literal["global"]]] = opt(
        None, "conv2d/pool kernel: k or [kh, kw], where an extent may be full (the source map's whole height or "
              "width, e.g. [3, full] over word vectors of any width); pools also take global (the whole map)")
    stride: Optional[Pair] = opt(None, "conv2d/pool stride: s or [sh, sw] (default 1 for conv2d, the kernel for pools)")
    padding: Pair = opt(0, "conv2d/pool zero padding: p or [ph, pw]")
    init: dict[str, Any] = opt({"torch_default": {}}, "weight init, e.g. {normal: {std: 0.05}}")
    bias: Optional[bool] = opt(None, "add a learnable bias to the target's input (default: yes for basal dense and "
                                     "conv2d projections; apical projections, pools and embeddings have none; soma "
                                     "projections cannot have one)")
    learnable: Optional[bool] = opt(None, "whether the rule updates this projection (default: yes, except "
                                          "embeddings, which stay frozen unless set, and apical projections from a "
                                          "pyramidal population (top-down), fixed unless set; soma projections have "
                                          "no weights)")
    lr_scale: float = opt(1.0, "learning-rate multiplier (an optimizer param group)", ge=0)
    plasticity: Optional[dict[str, Any]] = opt(
        None, "this projection's own rule and options, e.g. {rule: bp}: how it learns and what it carries back to "
              "its source's apical dendrite (default: the top-level plasticity block)")
    reads: Optional[str] = opt(
        None, "apical projections: the source's variable it carries (one its neuron model declares, e.g. burst or "
              "event of a burst population: BurstCCN's Y and Q); the projection is then named SOURCE:READS->TARGET, "
              "so two of them may join the same populations (default: the source's rate, named SOURCE->TARGET)")

    @property
    def name(self) -> str:
        if self.reads is not None:
            return f"{self.source}:{self.reads}->{self.target}"
        return f"{self.source}->{self.target}"

    @property
    def is_pool(self) -> bool:
        return self.connectivity in ("maxpool", "avgpool")

    @property
    def has_bias(self) -> bool:
        if self.bias is not None:
            return self.bias
        return self.connectivity in ("dense", "conv2d") and self.compartment == "basal"  # apical: none by default

    @property
    def is_learnable(self) -> bool:
        """Whether the rule updates the projection. An apical projection's default depends on its
        source's type (top-down from a pyramidal population: fixed; lateral from interneurons:
        learnable): the loader writes it into ``learnable`` (:func:`.loader.fill_implied`)."""
        if self.is_pool or self.connectivity == "one_to_one":
            return False
        return self.learnable if self.learnable is not None else self.connectivity != "embedding"

    def problem(self) -> Optional[str]:
        if self.compartment == "soma":
            if self.connectivity != "one_to_one":
                return (f"a compartment: soma projection nudges an interneuron one to one, without weights; "
                        f"connectivity {self.connectivity} is not allowed here (leave connectivity out, or write "
                        "one_to_one)")
            for key, bad in (("bias", self.bias), ("learnable", self.learnable)):
                if bad:
                    return f"a compartment: soma projection has no weights, so {key}: true is not allowed"
            if self.init != {"torch_default": {}}:
                return "a compartment: soma projection has no weights to initialise; remove init"
            if self.plasticity is not None:
                return "a compartment: soma projection has no weights to learn, so no plasticity block; remove it"
            if self.lr_scale != 1.0:
                return "a compartment: soma projection has no weights to learn, so no lr_scale; remove it"
        elif self.connectivity == "one_to_one":
            return (f"connectivity one_to_one is the somatic nudging of interneurons and needs compartment: soma, "
                    f"not {self.compartment}")
        if self.compartment != "basal" and self.kind == "recurrent":
            return (f"a compartment: {self.compartment} projection is not delayed; kind: recurrent is for basal "
                    "projections (write kind: feedforward, or leave it out)")
        if self.reads is not None and self.compartment != "apical":
            return (f"reads names the source variable an apical projection carries; a compartment: {self.compartment} "
                    "projection carries its source's rate (remove reads, or write compartment: apical)")
        if self.compartment == "apical" and self.connectivity != "dense":
            return (f"an apical projection is dense (rates of a population above, or of interneurons); "
                    f"connectivity {self.connectivity} is for basal projections")
        spatial = self.connectivity == "conv2d" or self.is_pool
        if not spatial:
            for key in ("kernel", "stride"):
                if getattr(self, key) is not None:
                    return f"{key} applies to conv2d and pooling projections, not {self.connectivity}"
            if self.padding != 0:
                return f"padding applies to conv2d and pooling projections, not {self.connectivity}"
        else:
            if self.kernel is None:
                return f"a {self.connectivity} projection needs a kernel (k or [kh, kw])"
            if self.kernel == "global" and not self.is_pool:
                return "kernel: global pools over the whole map; a conv2d kernel is k or [kh, kw]"
            for key, low in (("kernel", 1), ("stride", 1), ("padding", 0)):
                value = getattr(self, key)
                if value is None or value == "global":
                    continue
                items = (value,) if isinstance(value, int) else value
                if len(items) not in (1, 2) or any(v != "full" and v < low for v in items):
                    shown = list(value) if isinstance(value, tuple) else value
                    return f"{key} {shown} must be an integer >= {low} or a list of two"
        if self.kind == "recurrent" and self.connectivity != "dense":
            return f"a recurrent projection is dense; {self.connectivity} is for feedforward projections"
        if (self.is_pool or self.connectivity == "embedding") and self.bias:
            return f"a {self.connectivity} projection has no bias"
        if self.is_pool and self.learnable:
            return f"a {self.connectivity} projection has no weights to learn"
        return None


@dataclass(frozen=True)
class OptimizerConfig:
    type: Literal["sgd", "momentum", "adam", "adamw"] = opt("adam", "sgd, momentum (SGD with momentum), adam or adamw")
    lr: float = opt(1e-3, "base learning rate", gt=0)
    momentum: float = opt(0.9, "momentum (momentum only)", ge=0, le=1)
    nesterov: bool = opt(False, "Nesterov momentum (momentum only)")
    betas: tuple[float, ...] = opt((0.9, 0.999), "Adam betas")
    eps: float = opt(1e-8, "Adam epsilon", gt=0)
    weight_decay: float = opt(0.0, "L2 weight decay", ge=0)

    def problem(self) -> Optional[str]:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            return f"betas {list(self.betas)} must be two numbers in [0, 1)"
        return None


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = opt(5, "epochs without improvement of the validation metric before stopping", ge=1)
    metric: str = opt("loss", "validation metric to watch (loss, accuracy, ...)")
    min_delta: float = opt(0.0, "smallest change that counts as an improvement", ge=0)


@dataclass(frozen=True)
class AlignmentConfig:
    every: int = opt(100, "measure every N training steps", ge=1)
    probe_size: int = opt(256, "the first N training samples form the fixed probe batch", ge=1)


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of training: a run of epochs with the teacher on or off and its own learning."""

    epochs: int = req("epochs in this phase", ge=1)
    name: str = opt("", "the phase's name in logs, metrics and recordings (default: phase0, phase1, ...)")
    teacher: bool = opt(True, "whether the output is nudged toward the target (false: a free phase, e.g. the "
                              "microcircuit's self-predicting phase)")
    learn: Optional[tuple[str, ...]] = opt(
        None, "the projections ('a->b') that learn in this phase (default: every learnable projection); the others "
              "keep their weights and optimizer state")
    lr: Optional[float] = opt(None, "the optimizer's base learning rate in this phase (default: optimizer.lr)", gt=0)
    lr_scale: dict[str, float] = opt(
        {}, "'a->b' -> learning-rate multiplier in this phase (replaces the projection's own lr_scale)")


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = opt(10, "number of passes over the training set (with phases: their sum by default; a different "
                          "value, e.g. --epochs N, lengthens or shortens the last phase)", ge=1)
    seed: int = opt(0, "seed of every random number generator", ge=0, le=2**32 - 1)
    schedule: Literal["none", "linear", "cosine"] = opt("none", "learning-rate schedule over all steps")
    warmup_steps: int = opt(0, "linear warm-up steps before the schedule", ge=0)
    early_stopping: Optional[EarlyStoppingConfig] = opt(None, "stop when the validation metric stalls")
    select_best: bool = opt(True, "report the test metrics of the epoch with the best validation metric")
    max_steps_per_epoch: Optional[int] = opt(None, "cut every epoch short (for smoke tests)", ge=1)
    alignment: Optional[AlignmentConfig] = opt(
        None, "measure each projection's update against exact backprop on a probe batch (see below)")
    guard_every: int = opt(10, "check compartments, updates and weights for NaN/Inf every N steps (0: never)", ge=0)
    checkpoint_every: Optional[int] = opt(None, "also checkpoint every N steps (always at epoch ends and on a stop)", ge=1)
    phases: tuple[PhaseConfig, ...] = opt(
        (), "train in phases, one after another (epochs then is their sum): each with its epochs, teacher on or off, "
            "the projections that learn and learning rates (see below)")


@dataclass(frozen=True)
class RecordingConfig:
    enabled: bool = opt(True, "write recording.h5 into the run directory")
    every: int = opt(100, "record every N training steps (0: never by step)", ge=0)
    at_epoch_end: bool = opt(True, "also record after the last step of every epoch")
    samples: int = opt(16, "batch samples recorded each time", ge=1)
    sample_selection: Literal["first", "random"] = opt("first", "the first samples of the batch, or a seeded random subset")
    neurons: Optional[int] = opt(None, "record only the first N neurons of each population", ge=1)
    dtype: Literal["float32", "float16"] = opt("float32", "storage dtype of recorded activity")
    flush_every: int = opt(10, "records buffered in memory before they are written and flushed", ge=1)
    max_gib: float = opt(20.0, "refuse to start when the recording's estimated size exceeds this many GiB", gt=0)
    compression: Literal["lzf", "gzip", "none"] = opt(
        "lzf", "lzf: fast, bundled with h5py; gzip: readable by every HDF5 tool, slower; none")
    compression_level: int = opt(4, "gzip level (1 fastest .. 9 smallest)", ge=1, le=9)
    populations: Union[dict[str, tuple[str, ...]], Literal["hidden"]] = opt(
        "hidden", "population -> variables (soma, basal, apical, rate, error); hidden: all five of every hidden population")
    projections: dict[str, tuple[str, ...]] = opt(
        {}, "'a->b' -> variables (weight, update, and the rule's own: feedback, feedback_update)")
    projections_every: Optional[int] = opt(
        None, "record projections every N steps instead of every (weights are large)", ge=1)
    rule: tuple[str, ...] = opt((), "the rule's own recordables: clip_counts")


@dataclass(frozen=True)
class CompartmentConfig:
    """One population's own constants under ``mode: euler`` (unset keys take the block's)."""

    tau: Optional[float] = opt(None, "membrane time constant τ of this population", gt=0)
    g_leak: Optional[float] = opt(None, "leak conductance g_L of this population", ge=0)
    g_basal: Optional[float] = opt(None, "basal-to-soma coupling g_B of this population", gt=0)
    g_apical: Optional[float] = opt(None, "apical-to-soma coupling g_A of this population", gt=0)
    g_dendrite: Optional[float] = opt(None, "interneurons: dendrite-to-soma coupling g_D of this population", gt=0)
    g_som: Optional[float] = opt(None, "interneurons: somatic nudging conductance g_som of this population", gt=0)


@dataclass(frozen=True)
class DynamicsConfig:
    """How the compartments come to their values during one presentation of a batch."""

    mode: str = opt(
        "steady", "the settling scheme. Built in: steady: soma = basal and a top-down sweep of the errors (exact, "
                  "instant); euler: the soma integrates its basal and apical inputs in time, every population at "
                  "once (see below). Or the name of a scheme registered in dendrisim.settling.SCHEMES",
        type_text="'steady', 'euler' or a registered scheme")
    dt: float = opt(0.2, "euler: time step (in the units of tau)", gt=0)
    steps: int = opt(20, "euler: Euler steps per presentation of a batch (at least the network's depth)", ge=1)
    tau: float = opt(1.0, "euler: membrane time constant τ", gt=0)
    g_leak: float = opt(0.0, "euler: leak conductance g_L (attenuates the forward drive by g_B/(g_L+g_B+g_A))", ge=0)
    g_basal: float = opt(1.0, "euler: basal-to-soma coupling g_B", gt=0)
    g_apical: float = opt(0.05, "euler: apical-to-soma coupling g_A; the nudging λ = g_A/(g_L+g_B+g_A)", gt=0)
    g_dendrite: float = opt(1.0, "euler: interneurons' dendrite-to-soma coupling g_D", gt=0)
    g_som: float = opt(0.8, "euler: interneurons' somatic nudging conductance g_som (toward the population they "
                            "predict); the interneuron's nudging λ_I = g_som/(g_L+g_D+g_som)", gt=0)
    record_every: int = opt(1, "euler: record every k-th step of a presentation (and always its last)", ge=1)
    plasticity: Literal["settled", "online"] = opt(
        "settled", "euler: updates from the settled end of the presentation, or online: averaged over its steps")
    populations: dict[str, CompartmentConfig] = opt(
        {}, "euler: per-population tau, g_leak, g_basal, g_apical (pyramidal), g_dendrite, g_som "
            "(interneurons), e.g. {out: {g_apical: 0.05}}")
    options: dict[str, Any] = opt(
        {}, "the other keys of the block: the settling scheme's own options (a scheme registered from a plugin "
            "declares them), checked by the scheme", rest=True)


@dataclass(frozen=True)
class ModelConfig:
    name: str = req("name of the experiment (run folders are named after it)")
    task: dict[str, Any] = req("the task and its data (see the task's keys)")
    populations: dict[str, PopulationConfig] = req("name -> population")
    projections: tuple[ProjectionConfig, ...] = req("list of projections")
    plasticity: dict[str, Any] = opt({"rule": "dll"}, "the plasticity rule and its options")
    optimizer: OptimizerConfig = opt(OptimizerConfig(), "how updates are applied")
    training: TrainingConfig = opt(TrainingConfig(), "the training loop")
    recording: RecordingConfig = opt(RecordingConfig(), "what goes into recording.h5")
    dynamics: DynamicsConfig = opt(DynamicsConfig(), "the settling scheme (dendrisim.settling) that presents each "
                                                     "batch: the steady sweep (default) or simulated compartments")
    description: str = opt("", "free text")
