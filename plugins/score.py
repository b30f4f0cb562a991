"""The ``score`` plugin: with ``score: true`` in a recipe, ``stylefw score``'s two numbers for the finished picture
go into its metadata and sidecar (``score``), measured with the run's backbone built whole and in float32, so
that they do not depend on how the picture was made. A run that failed is not scored."""

from __future__ import annotations

from stylefw.contracts.run import FAILED, RunFinish
from stylefw.hooks.specs import hookimpl

__all__: list[str] = []


@hookimpl
def on_run_finish(event: RunFinish) -> None:
    recipe = event.run.recipe
    if not recipe.score or (event.stopped is not None and event.stopped.reason == FAILED):
        return
    from stylefw.tools.score import score_metadata  # deferred: this module loads with every command; scoring, torch

    blend = [ref.weight for ref in recipe.styles]
    event.metadata["score"] = score_metadata(event.picture, event.content, event.styles, event.backbone(),
                                             style_weights=blend, backbone_spec=recipe.data["backbone"])
