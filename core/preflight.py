"""What only a plugin's factory can judge, found when a run starts and before any image is decoded.

Validation checks options against each factory's declared signature and builds nothing. A factory may
still refuse a combination its annotations cannot say (SGD's ``nesterov`` without ``momentum``, a third-
party schedule's bound that depends on the run's steps): building each loss, the optimizer on a
throwaway parameter and its schedule once here turns such a refusal into a RecipeError at its dotted path.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .errors import InternalError, PluginBugError, Problem, RecipeError
from .faults import call_plugin
from .recipe import Recipe
from .registry import Registry

__all__ = ["BUILT_HINT", "preflight"]

# 'stylefw validate' builds nothing, so it cannot find what only building a plugin reveals
BUILT_HINT = "fix the keys above; the plugin refuses them when it is built, which 'stylefw validate' does not do"


def preflight(recipe: Recipe, registry: Registry) -> None:
    """Build the recipe's losses, optimizer and schedule once; raise RecipeError naming each that refuses."""
    problems: list[Problem] = []
    attempt = _Attempt(problems, registry)
    for index, spec in enumerate(recipe.losses):
        factory = registry.get("loss", spec.name).factory
        attempt(f"losses[{index}]", "loss", spec.name, lambda: factory(**spec.options))
    optimizer_spec, schedule = recipe.optimizer, recipe.optimizer.schedule
    build = registry.get("optimizer", optimizer_spec.name).factory
    throwaway = [torch.zeros(1, requires_grad=True)]
    optimizer = attempt("optimizer", "optimizer", optimizer_spec.name, lambda: build(throwaway, **optimizer_spec.options))
    if optimizer is not None and schedule is not None:
        scheduler = registry.get("scheduler", schedule.name).factory
        # each stage's steps, as the engine passes them: every stage gets its own schedule
        for steps in sorted({stage.steps for stage in recipe.stages}):
            built = attempt("optimizer.schedule", "scheduler", schedule.name,
                            lambda: scheduler(optimizer, total_steps=steps, **schedule.options))
            if built is None:
                break
    if problems:
        raise RecipeError(problems, source=recipe.source, hint=BUILT_HINT)


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
