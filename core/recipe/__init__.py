"""Recipes: YAML read safely, ``--set`` overrides applied, and every key validated at once, with its dotted path.

- :mod:`~stylefw.recipe.load`: finding, loading and overriding recipes;
- :mod:`~stylefw.recipe.schema`: the top-level keys; :mod:`~stylefw.recipe.sections`: the plugin sections
  (backbone, losses, optimizer), checked against each plugin's declared options;
- :mod:`~stylefw.recipe.validator`: the type and range checks both are built from;
- :mod:`~stylefw.recipe.overrides`, :mod:`~stylefw.recipe.yaml_input`, :mod:`~stylefw.recipe.paths` and
  :mod:`~stylefw.recipe.layers`: ``--set``, safe YAML, file paths, and layer names.

The records a recipe becomes (``Recipe`` and its parts) are :mod:`stylefw.contracts.recipe`'s.
"""

from __future__ import annotations

from ..contracts.recipe import (IMAGE_SUFFIXES, BackboneSpec, ColorSpec, ImageRef, LossSpec, OptimizerSpec, Recipe,
                                ScheduleSpec, TileSpec, is_url)
from .load import builtin_recipes, find_recipe, load_recipe, override, recipe_from_dict

__all__ = ["Recipe", "ImageRef", "BackboneSpec", "LossSpec", "OptimizerSpec", "ScheduleSpec", "ColorSpec", "TileSpec",
           "IMAGE_SUFFIXES", "is_url", "builtin_recipes", "find_recipe", "load_recipe", "override", "recipe_from_dict"]
