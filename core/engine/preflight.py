"""Everything a run checks before its first step, found at once, and before any image is decoded where it can be.

The schema checks options against each factory's declared signature and builds nothing. A factory may
still refuse a combination its annotations cannot say (SGD's ``nesterov`` without ``momentum``, a third-
party schedule's bound that depends on the run's steps): building each loss, the optimizer on a
throwaway parameter and its schedule once turns such a refusal into a problem at its dotted path
(:func:`refusals`), listed with the schema's own problems (:func:`validated`), even for the parts of a recipe
that validated when others did not. ``stylefw validate`` goes on to what else a run checks before its first
step (:mod:`~stylefw.engine.readiness`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from ..contracts.recipe import LossSpec, OptimizerSpec, Recipe
from ..contracts.scales import plan
from ..errors import InternalError, PluginBugError, Problem, RecipeError
from ..hooks.faults import call_plugin
from ..hooks.registry import Registry

__all__ = ["BUILT_HINT", "refusals", "parts_of", "preflight", "validated"]

BUILT_HINT = "fix the keys above; the plugins refuse some of them only when they are built"


def refusals(parts: Mapping[str, Any], registry: Registry) -> list[Problem]:
    """Build each validated loss (``parts["losses"]``, by index), the optimizer on a throwaway parameter and its
    schedule once; a problem for each that refuses."""
    problems: list[Problem] = []
    attempt = _Attempt(problems, registry)
    losses: Mapping[int, LossSpec] = parts.get("losses", {})
    for index, spec in losses.items():
        factory = registry.get("loss", spec.name).factory
        attempt(f"losses[{index}]", "loss", spec.name, lambda: factory(**spec.options))
    optimizer_spec: OptimizerSpec | None = parts.get("optimizer")
    if optimizer_spec is None:
        return problems
    build = registry.get("optimizer", optimizer_spec.name).factory
    throwaway = [torch.zeros(1, requires_grad=True)]
    optimizer = attempt("optimizer", "optimizer", optimizer_spec.name, lambda: build(throwaway, **optimizer_spec.options))
    schedule = optimizer_spec.schedule
    if optimizer is not None and schedule is not None:
        scheduler = registry.get("scheduler", schedule.name).factory
        # each stage's steps, as the engine passes them: every stage gets its own schedule
        for steps in sorted({stage.steps for stage in _stages(parts)}):
            built = attempt("optimizer.schedule", "scheduler", schedule.name,
                            lambda: scheduler(optimizer, total_steps=steps, **schedule.options))
            if built is None:
                break
    return problems


def _stages(parts: Mapping[str, Any]) -> tuple:
    """The run's stages, when the keys that plan them validated."""
    if any(parts.get(key) is None for key in ("scales", "size", "steps", "min_size")):
        return ()
    return plan(parts["scales"], size=parts["size"], steps=parts["steps"], min_size=parts["min_size"])


def parts_of(recipe: Recipe) -> dict[str, Any]:
    """A whole recipe's parts, as ``RecipeError.parts`` gives those of one that did not validate."""
    return {"losses": dict(enumerate(recipe.losses)), "optimizer": recipe.optimizer, "scales": recipe.scales,
            "size": recipe.size, "steps": recipe.steps, "min_size": recipe.min_size}


def preflight(recipe: Recipe, registry: Registry) -> None:
    """Build the recipe's losses, optimizer and schedule once; raise RecipeError naming each that refuses."""
    problems = refusals(parts_of(recipe), registry)
    if problems:
        raise RecipeError(problems, source=recipe.source, hint=BUILT_HINT)


def validated(load: Callable[[], Recipe], registry: Registry) -> Recipe:
    """``load()``'s recipe, its plugins' refusals found too: one RecipeError lists the schema's problems and the
    refusals of the parts that did validate (a loss that refuses its options beside another's unknown layer)."""
    try:
        recipe = load()
    except RecipeError as exc:
        more = refusals(exc.parts, registry) if exc.parts else []
        if not more:
            raise
        raise RecipeError(exc.problems + more, source=exc.source, hint=BUILT_HINT) from None
    preflight(recipe, registry)
    return recipe


class _Attempt:
    """Builds one plugin item: a refusal (TypeError, ValueError, RuntimeError) is recorded, anything else is a bug."""

    def __init__(self, problems: list[Problem], registry: Registry) -> None:
        self.problems, self.registry = problems, registry

    def __call__(self, path: str, kind: str, name: str, build: Callable[[], Any]) -> Any:
        """``build()``, or None with its refusal recorded at ``path``."""
        try:
            return call_plugin(self.registry.manager, self.registry.get(kind, name), build)
        except (PluginBugError, InternalError) as exc:
            if not isinstance(exc.__cause__, (TypeError, ValueError, RuntimeError)):
                raise
            self.problems.append(Problem(path, f"{kind} '{name}' rejects these options: {exc.__cause__}"))
            return None
