"""How far the golden loss traces drift across the CPU kernels torch can choose, measured in one run.

    python benchmarks/golden_drift.py [--recipes d2l.yaml gatys.yaml vangogh.yaml]

Each kernel choice runs the golden traces of tests/test_golden.py in a fresh process: ATen's vector
kernels (``ATEN_CPU_CAPABILITY``) and oneDNN's convolutions (``DNNL_MAX_CPU_ISA``), from plain SSE up to
what this CPU has (a request above it falls back to the best there is). The drift of a value at a step is
the spread of that value over all choices, as a fraction of the step's total loss, which is how
tests/test_golden.py applies its tolerances. The worst drift at the initial image (before any update)
and over the trace is what those tolerances are set from.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
KERNELS = [
    {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41"},
    {"ATEN_CPU_CAPABILITY": "default"},
    {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"},
    {"ATEN_CPU_CAPABILITY": "avx2"},
    {"ATEN_CPU_CAPABILITY": "avx512"},
    {},
]
# run in each child: the golden inputs and traces exactly as the test makes them
CHILD = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import test_golden
inputs = test_golden.make_inputs(Path(tempfile.mkdtemp()))
print(json.dumps({{name: test_golden.golden_record(name, inputs) for name in {recipes!r}}}))
"""


def traces(kernels: dict[str, str], recipes: list[str]) -> dict:
    env = {**os.environ, **kernels}
    code = CHILD.format(tests=str(TESTS), recipes=recipes)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["d2l.yaml", "gatys.yaml", "vangogh.yaml"])
    args = parser.parse_args()
    runs = [traces(kernels, args.recipes) for kernels in KERNELS]
    print(f"{len(KERNELS)} kernel choices: " + "; ".join(" ".join(f"{k}={v}" for k, v in kernels.items()) or "as chosen"
                                                    for kernels in KERNELS))
    worst = {"initial": 0.0, "trace": 0.0}
    for name in args.recipes:
        records = [run[name] for run in runs]
        rows = [("initial", [record["initial"] for record in records])]
        rows += [(f"step {number}", steps) for number, steps in enumerate(zip(*(r["trace"] for r in records)), 1)]
        for label, steps in rows:
            which = "initial" if label == "initial" else "trace"
            total = abs(steps[0]["total"])
            drift = max((max(s[key] for s in steps) - min(s[key] for s in steps)) / total for key in steps[0])
            worst[which] = max(worst[which], drift)
            print(f"{name:14s} {label:8s} total {steps[0]['total']:.6g}  drift {drift:.2e} of the total")
    print(f"worst drift: initial image {worst['initial']:.2e}, trace {worst['trace']:.2e} (fractions of the total)")

if __name__ == "__main__":
    main()
