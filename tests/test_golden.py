"""The shipped recipes' goldens: ``recipes/NAME.golden.json``, beside each recipe and shipped with it.

stylefw's own pytest plugin checks them (the items ``recipes/NAME.yaml::NAME.yaml``, collected through
``stylefw_recipes`` in pyproject.toml), exactly as it checks a user's recipes; see ``stylefw.tools.goldens``
for what a golden holds and where its tolerances come from. The tests here check the goldens
themselves: every shipped recipe has one that runs offline, its recorded loss goes down, and a real
change to a recipe fails it.

Re-record after an intended change, and review the diff::

    python -m pytest recipes --stylefw-record        # or: stylefw check --record recipes/*.yaml
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from stylefw.engine.stages import plan_stages
from stylefw.tools import goldens as regress
from stylefw.recipe import builtin_recipes, find_recipe, load_recipe


@pytest.mark.parametrize("name", builtin_recipes())
def test_every_shipped_recipe_has_a_golden_that_runs_offline(name):
    golden = regress.read_golden(regress.golden_path(find_recipe(name)))
    assert golden["settings"]["backbone.weights"] == "random"  # no download, no ../shared
    assert golden["settings"]["device"] == "cpu"


# d2l keeps the book's step: on a 48 px image with random weights, its first steps roughen the image (tv rises)
NOT_DECREASING = {"d2l.yaml"}


def stage_totals(name: str) -> list[list[float]]:
    """The golden's recorded totals, one list per stage of the recipe's plan: each stage has its own size and
    targets, so its loss starts afresh and only compares with itself."""
    golden = regress.read_golden(regress.golden_path(find_recipe(name)))
    recipe = load_recipe(name, golden["settings"])
    with Image.open(io.BytesIO(base64.b64decode(golden["inputs"]["content"]))) as content:
        stages = plan_stages(recipe, content.size)
    totals, found = [step["total"] for step in golden["trace"]], []
    for stage in stages:
        found.append(totals[:stage.steps])
        totals = totals[stage.steps:]
    assert not totals, "the golden holds more steps than the recipe's stages"
    return found


@pytest.mark.parametrize("name", sorted(set(builtin_recipes()) - NOT_DECREASING))
def test_the_recorded_loss_goes_down_in_every_stage(name):
    for totals in stage_totals(name):
        assert totals[-1] < totals[0], totals


# each a real change a golden must catch in vangogh.yaml: a wrong layer, a changed weight, a changed step size,
# with the term whose row the report must mark
SABOTAGES = {
    "content at relu4_1, not relu4_2": ({"losses[0].layers": ["relu4_1"]}, "content"),
    "the style weight 1.5x": ({"losses[1].weight": 15.0}, "gram"),
    "the learning rate 1.5x": ({"optimizer.lr": 0.03}, "total"),
}


def test_the_sabotages_are_changes():
    recipe = load_recipe("vangogh.yaml")
    assert recipe.losses[0].options["layers"] == ["relu4_2"] and recipe.losses[1].weight == 10
    assert recipe.optimizer.options["lr"] == 0.02


@pytest.mark.parametrize("sabotage", sorted(SABOTAGES))
def test_a_real_change_fails_the_golden(sabotage, tmp_path):
    changes, term = SABOTAGES[sabotage]
    outcome = regress.check("vangogh.yaml", overrides=changes, failures=tmp_path)
    assert outcome.status == "failed", f"{sabotage} ({changes}) went unnoticed"
    marked = [line.split()[1] for line in outcome.report.splitlines() if line.endswith("  <")]
    assert term in marked, outcome.report
    assert (tmp_path / "vangogh.png").is_file()
