"""stylefw against a hand-written PyTorch loop and against pystiche 1.0.1, doing the same work.

    python benchmarks/peers.py [--sizes 128 256 512] [--steps 8] [--rounds 3] [--memory-sizes 512 1024]

The work is bench_overhead.py's: VGG-19 with random weights, content at relu4_2, Gram at relu1_1 to
relu5_1 (weight 100), total variation (weight 10), Adam at 0.02, on a 4:3 picture, on the CPU. pystiche
optimises with its own losses (FeatureReconstructionLoss, a MultiLayerEncodingLoss of GramLoss,
TotalVariationLoss with exponent 1) in the same loop as the hand-written one.

- **Seconds per step** at each size: in this process, the three contenders in turn, ``rounds`` times,
  each round's median step (after the first) compared with the hand loop's of the same round.
- **Start-up**: a fresh process per contender, from its launch to the end of its first step at 256 px
  (the interpreter, the imports, building the backbone, the targets and one step).
- **Memory per megapixel**: a fresh process per contender and size, the slope of its peak resident set
  size (``getrusage``) between the two ``memory-sizes``, as benchmarks/memory.py measures it.

pystiche 1.0.1 (2022) does not import with torchvision 0.13 and later, which dropped the ``model_urls``
tables its model modules read at import; ``shim_pystiche`` puts them back. Its VGG is built without
pretrained weights, so nothing is downloaded. Install it for this benchmark only:
``pip install --no-deps pystiche==1.0.1 tqdm``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

CONTENDERS = ("stylefw", "hand", "pystiche")
STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
VGG_NAMES = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")


def shim_pystiche():
    """pystiche, importable with current torchvision: its modules read ``model_urls``, which torchvision 0.13
    removed; the tables are put back (their addresses are never fetched: the weights are not pretrained)."""
    for module, names in (("alexnet", ("alexnet",)), ("vgg", VGG_NAMES)):
        models = importlib.import_module(f"torchvision.models.{module}")
        if not hasattr(models, "model_urls"):
            models.model_urls = {name: f"https://download.pytorch.org/models/{name}.pth" for name in names}
    return importlib.import_module("pystiche")


def pystiche_steps(content, style, steps: int) -> list[float]:
    """Seconds per step of the same optimisation with pystiche's encoder and losses."""
    import torch

    shim_pystiche()
    from pystiche import enc, loss

    encoder = enc.vgg19_multi_layer_encoder(pretrained=False)
    criterion = loss.PerceptualLoss(
        loss.FeatureReconstructionLoss(encoder.extract_encoder("relu4_2")),
        loss.MultiLayerEncodingLoss(encoder, STYLE, lambda layer, weight: loss.GramLoss(layer, score_weight=weight),
                                    score_weight=100),
        loss.TotalVariationLoss(exponent=1, score_weight=10))
    criterion.set_content_image(content)
    criterion.set_style_image(style)
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.02)
    stamps = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        total = criterion(image)
        total.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        stamps.append(time.perf_counter())
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def run_contender(contender: str, folder: Path, size: int, steps: int) -> list[float]:
    """Seconds per step of ``contender`` on pictures written into ``folder`` at ``size``."""
    from bench_overhead import framework_steps, hand_steps, recipe, write_inputs
    from stylefw.engine.image import load_image, to_tensor

    content_path, style_path = write_inputs(folder, size)
    if contender == "stylefw":
        return framework_steps(recipe(content_path, style_path, size, steps + 1, "cpu"))
    content, style = (to_tensor(load_image(path)) for path in (content_path, style_path))
    return (hand_steps if contender == "hand" else pystiche_steps)(content, style, steps + 1)


def child(contender: str, size: int, steps: int, launched: float) -> None:
    """In a fresh process: start-up (launch to the end of the first step), peak RSS, median step."""
    warnings.simplefilter("ignore")
    first: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        seconds = run_contender(contender, Path(folder), size, steps)
    # the first step ends where the later steps' times, counted back from now, begin
    first.append(time.time() - sum(seconds) - launched)
    print(json.dumps({"startup_s": first[0], "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "step_s": statistics.median(seconds)}))


def fresh(contender: str, size: int, steps: int) -> dict:
    launched = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", contender, str(size), str(steps), repr(launched)],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, size, steps, launched = args.child
        child(contender, int(size), int(steps), float(launched))
        return
    import torch

    warnings.simplefilter("ignore")
    shim_pystiche()
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; seconds per step, {args.rounds} "
          f"interleaved rounds of {args.steps} steps; ratios to the hand loop are medians of the rounds' ratios")
    for size in args.sizes:
        rounds: dict[str, list[float]] = {contender: [] for contender in CONTENDERS}
        for _ in range(args.rounds):
            for contender in CONTENDERS:
                with tempfile.TemporaryDirectory() as folder:
                    rounds[contender].append(statistics.median(run_contender(contender, Path(folder), size,
                                                                             args.steps)))
        ratios = {contender: statistics.median(a / b for a, b in zip(rounds[contender], rounds["hand"]))
                  for contender in CONTENDERS}
        print(f"  {size} px: " + ", ".join(f"{contender} {statistics.median(rounds[contender]) * 1000:.0f} ms "
                                          f"({ratios[contender]:.2f}x)" for contender in CONTENDERS)
              + f"; pystiche / stylefw {ratios['pystiche'] / ratios['stylefw']:.2f}")
    starts = {contender: fresh(contender, 256, 2)["startup_s"] for contender in CONTENDERS}
    print("start-up to the end of the first step at 256 px, fresh processes: "
          + ", ".join(f"{contender} {seconds:.1f} s ({seconds / starts['hand']:.2f}x)"
                      for contender, seconds in starts.items()))
    small, large = args.memory_sizes
    pixels = {size: size * (size * 3 // 4) for size in args.memory_sizes}
    slopes = {}
    for contender in CONTENDERS:
        peaks = {size: fresh(contender, size, 3)["peak_bytes"] for size in args.memory_sizes}
        slopes[contender] = (peaks[large] - peaks[small]) / (pixels[large] - pixels[small]) * 1e6
    print(f"memory per megapixel, peak RSS from {small} to {large} px: "
          + ", ".join(f"{contender} {slope / 1e9:.2f} GB/MP ({slope / slopes['hand']:.2f}x)"
                      for contender, slope in slopes.items()))


if __name__ == "__main__":
    main()
