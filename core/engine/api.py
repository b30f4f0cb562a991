"""The Python API: ``run`` a recipe, ``resume`` one from its checkpoint, ``run_together`` several as lanes of one
batch, and ``create_backbone`` by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..contracts.recipe import Recipe
from ..contracts.run import OnEvent, Result, Step
from ..errors import UserError
from ..hooks.registry import Registry, default_registry
from ..recipe.load import load_recipe, override, recipe_from_dict
from .build import create_backbone
from .checkpoint import changed_inputs, changed_keys, read_checkpoint
from .events import step_callback
from .inputs import OnDownload
from .lanes import compatible
from .preflight import validated
from .session import Session

__all__ = ["Result", "RecipeLike", "run", "resume", "run_together", "create_backbone", "resolve_recipe"]

RecipeLike = Recipe | str | Path | Mapping[str, Any]


def resolve_recipe(recipe: RecipeLike, overrides: Iterable[str] | Mapping[str, Any] = (),
                   registry: Registry | None = None) -> Recipe:
    """A validated Recipe from a path, a built-in name, a dict or a Recipe, with ``overrides`` applied.

    Its losses, optimizer and schedule are then built once (see :mod:`stylefw.engine.preflight`), so options
    that only a plugin can refuse are a RecipeError here, before any image is decoded.
    """
    registry = registry or default_registry()

    def load() -> Recipe:
        if isinstance(recipe, Recipe):
            return override(recipe, overrides, registry=registry) if overrides else recipe
        if isinstance(recipe, Mapping):
            return recipe_from_dict(recipe, overrides=overrides, registry=registry)
        return load_recipe(recipe, overrides, registry=registry)

    return validated(load, registry)


def run(recipe: RecipeLike, overrides: Iterable[str] | Mapping[str, Any] = (), *,
        on_event: OnEvent | None = None,
        on_step: Callable[[Step], None] | None = None,
        on_download: OnDownload | None = None,
        registry: Registry | None = None, save: bool = True, debug: bool = False) -> Result:
    """Stylise as ``recipe`` says; writes the output (if the recipe names one and ``save``) and returns it.

    ``on_event`` is called with every event of the run (see ``stylefw.contracts``), after the installed
    plugins' hooks; a StepEvent's ``stop(reason)`` ends the run after that step. ``on_step`` is called with each
    step as plain numbers. Ctrl-C, SIGTERM and SIGHUP stop the run the same way (the ``signals`` plugin): the
    result so far is returned (and saved) with ``interrupted=True``; with ``debug`` a second Ctrl-C aborts at
    once, even while the output is written.

    With an output, a run that stops early (but not one that fails) writes ``<output>.ckpt``, as does every
    ``checkpoint_every`` steps; one that finishes removes it (the ``checkpoints`` plugin). ``resume``
    continues from it.
    """
    registry = registry or default_registry()
    recipe = resolve_recipe(recipe, overrides, registry)
    session = Session([recipe], registry, save=save, debug=debug, on_download=on_download)
    session.prepare()
    return _single(session, None, on_event, on_step)


def resume(checkpoint: str | Path, overrides: Iterable[str] | Mapping[str, Any] = (), *, force: bool = False,
           on_event: OnEvent | None = None, on_step: Callable[[Step], None] | None = None,
           on_download: OnDownload | None = None,
           registry: Registry | None = None, debug: bool = False) -> Result:
    """Continue the run whose checkpoint is ``checkpoint`` (``out.png.ckpt``, or its output ``out.png``) to its end.

    The recipe is the one stored in the checkpoint. ``overrides`` that change it, and input files whose bytes
    changed since, are a UserError naming them, unless ``force``; ``checkpoint_every`` and ``save_every`` may
    change freely. The result, its trace and its sidecar are the whole run's; on the CPU with the same
    number of threads the image is the one an uninterrupted run makes, bit for bit.
    """
    registry = registry or default_registry()
    state = read_checkpoint(checkpoint)
    recipe = resolve_recipe(state["recipe"], overrides, registry)
    changed = changed_keys(state["recipe"], recipe.data)
    if changed and not force:
        raise UserError(f"the checkpoint's recipe differs at {', '.join(changed)}", context=str(checkpoint),
                        hint="resume without those --set values, or add --force to continue with them (the image "
                             "will then differ from an uninterrupted run's)")
    session = Session([recipe], registry, save=True, debug=debug, on_download=on_download)
    changed = changed_inputs(state["inputs"], recipe)
    if changed and not force:
        raise UserError(f"the input file{'s' * (len(changed) > 1)} {', '.join(changed)} changed since the "
                        "checkpoint was written", hint="put the original back, or add --force to continue "
                        "with the new one (the image will then differ from an uninterrupted run's)")
    session.prepare()
    return _single(session, state, on_event, on_step)


def _single(session: Session, state: dict[str, Any] | None, on_event: OnEvent | None,
            on_step: Callable[[Step], None] | None) -> Result:
    staged = session.staged(0, resume=state, subscribers=[step_callback(on_step) if on_step else None, on_event])
    return session.run(staged)


def run_together(recipes: Sequence[RecipeLike], *, on_events: Sequence[OnEvent | None] | None = None,
                 registry: Registry | None = None, save: bool = True, debug: bool = False) -> list[Result]:
    """Run ``recipes`` as lanes of one batch (``stylefw.engine.lanes``): one forward and backward pass a step for all.

    The recipes may differ only in their images, and their contents must have one shape; a ValueError says
    why when they cannot share a batch. Each result, trace, output and sidecar is its recipe's own, and its
    image is the one ``run`` makes, up to float rounding. ``on_events[i]`` (if given) sees recipe i's events;
    the plugins see every lane's, each with its ``run.lane``. Ctrl-C stops them all; lanes write no
    checkpoints, so an interrupted lane starts again.
    """
    registry = registry or default_registry()
    resolved = [resolve_recipe(recipe, (), registry) for recipe in recipes]
    reason = compatible(resolved)
    if reason is not None:
        raise ValueError(f"these recipes cannot run as one batch: {reason}")
    session = Session(resolved, registry, save=save, debug=debug)
    session.prepare()
    events = [*(on_events or ()), *[None] * len(resolved)][:len(resolved)]
    runs = [session.staged(lane, subscribers=[on_event]) for lane, on_event in enumerate(events)]
    return session.run_lanes(runs)
