"""What only a plugin's factory can judge, found when a run starts and before any image is decoded.

Validation checks options against each factory's declared signature and builds nothing. A factory may
still refuse a combination its annotations cannot say (SGD's ``nesterov`` without ``momentum``, a third-
party schedule's bound that depends on the run's steps): building each loss, the optimizer on a
throwaway parameter and its schedule once here turns such a refusal into a RecipeError at its dotted path.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .errors import Problem, RecipeError
from .recipe import Recipe
from .registry import Registry

__all__ = ["preflight"]


def preflight(recipe: Recipe, registry: Registry) -> None:
    """Build the recipe's losses, optimizer and schedule once; raise RecipeError naming each that refuses."""
    problems: list[Problem] = []
    for index, spec in enumerate(recipe.losses):
        factory = registry.get("loss", spec.name).factory
        _attempt(problems, f"losses[{index}]", f"loss '{spec.name}'", lambda: factory(**spec.options))
    optimizer_spec, schedule = recipe.optimizer, recipe.optimizer.schedule
    build = registry.get("optimizer", optimizer_spec.name).factory
    throwaway = [torch.zeros(1, requires_grad=True)]
    optimizer = _attempt(problems, "optimizer", f"optimizer '{optimizer_spec.name}'",
                         lambda: build(throwaway, **optimizer_spec.options))
    if optimizer is not None and schedule is not None:
        scheduler = registry.get("scheduler", schedule.name).factory
        # each stage's steps, as the engine passes them: every stage gets its own schedule
        for steps in sorted({stage.steps for stage in recipe.stages}):
            built = _attempt(problems, "optimizer.schedule", f"scheduler '{schedule.name}'",
                             lambda: scheduler(optimizer, total_steps=steps, **schedule.options))
            if built is None:
                break
    if problems:
        raise RecipeError(problems, source=recipe.source)


def _attempt(problems: list[Problem], path: str, what: str, build: Callable[[], Any]) -> Any:
    """``build()``, or None with its refusal recorded at ``path``."""
    try:
        return build()
    except (TypeError, ValueError, RuntimeError) as exc:
        problems.append(Problem(path, f"{what} rejects these options: {exc}"))
        return None
