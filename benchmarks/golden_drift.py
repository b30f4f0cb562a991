"""How far the recipe checks drift across the CPU kernels torch can choose, measured in one run.

    python benchmarks/golden_drift.py [--recipes d2l.yaml gatys.yaml vangogh.yaml vangogh_hd.yaml]

Each kernel choice replays the shipped recipes' goldens (``recipes/NAME.golden.json``, what ``stylefw
check`` and the pytest plugin compare) in a fresh process: ATen's vector kernels (``ATEN_CPU_CAPABILITY``)
and oneDNN's convolutions (``DNNL_MAX_CPU_ISA``), from plain SSE up to what this CPU has (a request above
it falls back to the best there is). The drift of a loss value at a step is its spread over all choices,
as a fraction of the step's total, which is how ``stylefw.tools.goldens`` applies its tolerances; the drift of
the final picture is the largest mean absolute difference, in grey levels, between any choice's picture
and the first's. The worst of each is what the default tolerances are set from.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

KERNELS = [
    {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41"},
    {"ATEN_CPU_CAPABILITY": "default"},
    {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"},
    {"ATEN_CPU_CAPABILITY": "avx2"},
    {"ATEN_CPU_CAPABILITY": "avx512"},
    {},
]
# run in each child: each golden replayed exactly as a check replays it
CHILD = """
import json
from stylefw.tools import goldens as regress
from stylefw.recipe import find_recipe
runs = {{}}
for name in {recipes!r}:
    recipe = find_recipe(name)
    runs[name] = regress.replay(recipe, regress.read_golden(regress.golden_path(recipe)))
print(json.dumps(runs))
"""


def replays(kernels: dict[str, str], recipes: list[str]) -> dict:
    env = {**os.environ, **kernels}
    done = subprocess.run([sys.executable, "-c", CHILD.format(recipes=recipes)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def loss_drift(steps: list[dict[str, float]]) -> float:
    total = abs(steps[0]["total"])
    return max((max(s[key] for s in steps) - min(s[key] for s in steps)) / total for key in steps[0])


def main() -> None:
    from stylefw.tools.goldens import decode_png
    from stylefw.tools.goldens_report import image_difference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["d2l.yaml", "gatys.yaml", "vangogh.yaml", "vangogh_hd.yaml"])
    args = parser.parse_args()
    runs = [replays(kernels, args.recipes) for kernels in KERNELS]
    print(f"{len(KERNELS)} kernel choices: " + "; ".join(" ".join(f"{k}={v}" for k, v in kernels.items()) or "as chosen"
                                                    for kernels in KERNELS))
    worst = {"initial": 0.0, "trace": 0.0, "image": 0.0}
    for name in args.recipes:
        records = [run[name] for run in runs]
        rows = [("initial", [record["initial"] for record in records])]
        rows += [(f"step {number}", steps) for number, steps in enumerate(zip(*(r["trace"] for r in records)), 1)]
        for label, steps in rows:
            drift = loss_drift(list(steps))
            which = "initial" if label == "initial" else "trace"
            worst[which] = max(worst[which], drift)
            print(f"{name:16s} {label:8s} total {steps[0]['total']:.6g}  drift {drift:.2e} of the total")
        first = decode_png(records[0]["image"])
        picture = max(image_difference(first, decode_png(record["image"])) for record in records)
        worst["image"] = max(worst["image"], picture)
        print(f"{name:16s} picture  mean difference up to {picture:.3f} grey levels")
    print(f"worst drift: initial image {worst['initial']:.2e}, trace {worst['trace']:.2e} (fractions of the "
          f"total), final picture {worst['image']:.3f} grey levels")


if __name__ == "__main__":
    main()
