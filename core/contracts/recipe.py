"""A recipe as the run reads it: the validated ``Recipe`` and its parts, frozen records; and the declaration of every
recipe key, on ``Recipe``'s fields.

``stylefw.recipe`` makes them from YAML, checking every key against its declaration; ``Recipe.data`` gives a
recipe back as the plain mapping outputs record. Torch-free, like the rest of validation.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from ..markers import Range
from .scales import LAYER_FADE, ScaleSpec, Scales, plan

__all__ = ["ImageRef", "BackboneSpec", "LossSpec", "OptimizerSpec", "ScheduleSpec", "ColorSpec", "TileSpec", "Recipe",
           "Key", "REQUIRED", "key", "keys", "IMAGE_SUFFIXES", "COLOR_MODES", "MATCH_METHODS", "SWAP_SPACES",
           "DEFAULT_METHOD", "DEFAULT_SPACE", "is_url"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# colour control (stylefw.engine.color): the modes, histogram matching's methods and the spaces a swap uses; the
# defaults: sym moves the style's colours least (the optimal-transport map), Lab is perceptual
COLOR_MODES = ("none", "luminance", "histogram", "swap")
MATCH_METHODS = ("pca", "cholesky", "sym")
SWAP_SPACES = ("yuv", "lab")
DEFAULT_METHOD, DEFAULT_SPACE = "sym", "lab"


@dataclass(frozen=True)
class ImageRef:
    """An input image: an absolute path or an http(s) URL, its blend weight (None for the content, which is not
    blended) and an optional sha256."""

    source: str
    weight: float | None = 1.0
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return is_url(self.source)

    @property
    def data(self) -> dict[str, Any]:
        weight = {"weight": self.weight} if self.weight is not None else {}
        return {"image": self.source, **weight, **({"sha256": self.sha256} if self.sha256 else {})}


@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone to build and the options to build it with: the recipe's keys, files resolved."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return {"name": self.name, **copy.deepcopy(dict(self.options))}


@dataclass(frozen=True)
class LossSpec:
    """One loss term: its registry name, weight, options (layers resolved) and a display label."""

    name: str
    weight: float
    options: Mapping[str, Any]
    label: str

    @property
    def data(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, **copy.deepcopy(dict(self.options))}


@dataclass(frozen=True)
class ScheduleSpec:
    """Which learning-rate schedule to use and its options (the engine adds ``total_steps``)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimizer to use, the keyword arguments to pass it, and its schedule (None: a constant rate)."""

    name: str
    options: Mapping[str, Any]
    schedule: ScheduleSpec | None = None

    @property
    def data(self) -> dict[str, Any]:
        # no schedule key for a constant rate, so recipes without one resolve exactly as before schedules existed
        schedule = {"schedule": {"name": self.schedule.name, **self.schedule.options}} if self.schedule else {}
        return {"name": self.name, **copy.deepcopy(dict(self.options)), **schedule}


@dataclass(frozen=True)
class ColorSpec:
    """Colour control: ``none``, ``luminance``, ``histogram`` (with ``method``) or ``swap`` (with ``space``)."""

    mode: str = "none"
    method: str | None = None
    space: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


@dataclass(frozen=True)
class TileSpec:
    """The recipe's ``tile``: the inner tiles' side in pixels, or ``auto`` (from the memory budget), and the margin
    around each (None: the least that keeps the gradient exact)."""

    size: int | str
    margin: int | None = None

    @property
    def data(self) -> Any:
        if self.size == "auto" and self.margin is None:
            return "auto"
        return {"size": self.size, "margin": "auto" if self.margin is None else self.margin}


REQUIRED = object()  # a key's default when a recipe must give it


@dataclass(frozen=True)
class Key:
    """A recipe key's declaration: what it means, its default as a recipe writes it, and how it is read.

    ``name`` is the key in a recipe when it is not the field's (``style`` for ``styles``). A key without
    ``read`` is checked against its field's type alone (``Annotated[int, Range(16, 16384)]``, a ``Literal``,
    ``bool``); a key whose value is a record or depends on another key is declared ``read=True`` and read by
    :mod:`stylefw.recipe.schema`'s ``read_<field>``. ``off`` is how a recipe writes the field's None (``off``
    for ``tile``).
    """

    doc: str
    default: Any = REQUIRED
    name: str | None = None
    read: bool = False
    off: Any = None
    takes: str | None = None  # what the key takes, in words, when its type does not say (a ``read`` key's)


def key(doc: str, *, default: Any = REQUIRED, name: str | None = None, read: bool = False,
        off: Any = None, takes: str | None = None) -> Any:
    """Declare a field of ``Recipe`` as a recipe key: the one place it is declared (see ``Key``)."""
    return field(metadata={"key": Key(doc, default, name, read, off, takes)})


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A validated recipe. Each field is a recipe key, declared once here: validation
    (:mod:`stylefw.recipe.schema`), the mapping outputs record (``data``) and the reference page are all read
    from these declarations.
    """

    version: Literal[1] = key("the recipe format version; this stylefw reads version 1", default=1, read=True,
                              takes="1")
    content: ImageRef = key("the photo to stylise: a path (relative to the recipe file) or an http(s) URL, or "
                            "{image: ..., sha256: ...} to verify the file", read=True,
                            takes="a path or URL, or {image, sha256}")
    styles: tuple[ImageRef, ...] = key("one style image, or a list of {image, weight, sha256} whose targets are "
                                       "blended by weight (normalised to sum to 1)", name="style", read=True,
                                       takes="a path or URL, or a list of {image, weight, sha256}")
    size: Annotated[int, Range(16, 16384)] = key(
        "the output's long edge in pixels; the content image is scaled to it, keeping its aspect ratio", default=512)
    style_scale: Annotated[float, Range(0.01, 16.0)] = key(
        "the style images' long edge as a multiple of size: smaller gives larger strokes", default=1.0)
    octave_size: int | None = key(
        "off, or a long edge such as 256: the losses also compare the picture shrunk to it (and its halvings above "
        "it), so a larger picture keeps the strokes and the balance it has at this size, relative to the picture, "
        "and adds finer detail", default="off", read=True, off="off", takes="off, or a long edge in pixels (16 or more)")
    backbone: BackboneSpec = key(
        "the feature extractor, {name: ..., its own options}: the default backbone when no name is given "
        "(stylefw list shows the installed ones)", default={}, read=True,
        takes="a name, or {name, options}")
    losses: tuple[LossSpec, ...] = key(
        "the loss terms, each {name, weight (1.0), layers, its own options}: the total is the sum of each weight "
        "times its term", read=True,
        takes="a list of {name, weight, layers, options}")
    optimizer: OptimizerSpec = key(
        "the optimizer, {name, its own options, schedule}: the default optimizer when no name is given; "
        "schedule is a learning-rate schedule, stepped after each optimizer step", default={"lr": 0.02},
        read=True, takes="a name, or {name, options, schedule}")
    steps: Annotated[int, Range(1, 1_000_000)] = key(
        "optimizer steps (of each stage, with scales); one L-BFGS step runs up to max_iter evaluations", default=500)
    scales: Scales = key(
        "1 (one pass at size), auto (from min_size up by √2 to size, the first stage 2 × steps) or a list of "
        "{size, steps} stages growing to size", default=1, read=True, takes="1, auto, or a list of {size, steps}")
    min_size: Annotated[int, Range(16, 16384)] = key("the first stage's long edge with scales: auto", default=128)
    average: Annotated[float, Range(0, 1, high_open=True, says="0 (off) up to, but not including, 1, such as 0.99")
                       ] = key("deliver a bias-corrected moving average of the image with this decay (such as "
                               "0.99) instead of the last step's; 0 is off", default=0.0)
    layer_fade: tuple[float, float] | None = key(
        "on a multi-scale run's earlier stages, the spans of a stage's short side where a style layer's receptive "
        "field starts and ends fading it out; off keeps every stage at the recipe's weights",
        default=list(LAYER_FADE), read=True, off=False,
        takes="off, or two spans [full, none] from 0")
    init: Literal["content", "noise", "style"] = key(
        "the starting image: the content, uniform noise, or the first style stretched over it", default="content")
    seed: Annotated[int, Range(0, 2**63 - 1)] = key(
        "seeds torch before initialisation: the same seed gives the same result on the same machine", default=0)
    device: str = key("auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps", default="auto", read=True,
                      takes="auto, cpu, cuda, cuda:N or mps")
    output: Path | None = key(
        "the output, .png, .jpg, .jpeg or .webp, relative to the current directory; stylefw recipe names it after "
        "the recipe", default=None, read=True,
        takes="a file path")
    save_every: Annotated[int, Range(0, 1_000_000)] = key(
        "also write the picture every N steps of each stage beside the output (the snapshots plugin); 0 is never",
        default=0)
    checkpoint_every: Annotated[int, Range(0, 1_000_000)] = key(
        "also write <output>.ckpt every N steps of the run, for stylefw resume (the checkpoints plugin); 0 is never",
        default=0)
    memory: Literal["keep", "checkpoint"] = key(
        "checkpoint has the backbone recompute its activations in the backward pass: less memory, more time; "
        "the backbone must have a checkpointing switch", default="keep", read=True, takes="keep or checkpoint")
    tile: TileSpec | None = key(
        "off, auto (sized to the device's free memory) or {size, margin}: compute each step's gradient tile by "
        "tile, exactly, for pictures larger than one pass", default="off", read=True, off="off",
        takes="off, auto, or {size, margin}")
    precision: Literal["fp32", "tf32", "bf16"] = key(
        "the backbone's arithmetic: bf16 autocast (features, losses and image stay float32), tf32 on CUDA, or "
        "fp32; fp16 is refused", default="fp32", read=True, takes="fp32, tf32 or bf16")
    compile: bool = key("run the backbone through torch.compile, once per picture or tile shape", default=False)
    color: ColorSpec = key(
        "colour control: none, luminance, {mode: histogram, method: pca | cholesky | sym} or "
        "{mode: swap, space: yuv | lab}", default={"mode": "none"}, read=True,
        takes="a mode, or {mode, method or space}")
    score: bool = key("score the result as stylefw score does, into its metadata and sidecar (the score plugin)",
                      default=False)
    # the file the recipe came from, for messages and for overriding it again: not a key
    source: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The recipe as a plain mapping, keys in their declared order, as outputs record it (a fresh copy each
        time)."""
        return {declared.name or item.name: _data(getattr(self, item.name), declared)
                for item, declared in keys()}

    @property
    def stages(self) -> tuple[ScaleSpec, ...]:
        """The sizes this recipe renders at, smallest first, with the steps taken at each."""
        return plan(self.scales, size=self.size, steps=self.steps, min_size=self.min_size)

    @property
    def total_steps(self) -> int:
        """Optimizer steps over every stage."""
        return sum(stage.steps for stage in self.stages)

    @property
    def layers(self) -> list[str]:
        """Every backbone layer any loss reads, in the order they first appear."""
        seen: dict[str, None] = {}
        for loss in self.losses:
            seen.update(dict.fromkeys(loss.options.get("layers", ())))
        return list(seen)


def keys() -> list[tuple[dataclasses.Field, Key]]:
    """Each recipe key: its ``Recipe`` field and its declaration, in the order recipes and outputs list them."""
    return [(item, item.metadata["key"]) for item in dataclasses.fields(Recipe) if "key" in item.metadata]


def _data(value: Any, declared: Key) -> Any:
    """A field's value as a recipe writes it."""
    if value is None:
        return declared.off
    if isinstance(value, (ImageRef, BackboneSpec, LossSpec, OptimizerSpec, ColorSpec, TileSpec)):
        return value.data
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_data(item, declared) if not isinstance(item, ScaleSpec) else dataclasses.asdict(item)
                for item in value]
    return value


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL rather than a file path."""
    return source.startswith(("http://", "https://"))
