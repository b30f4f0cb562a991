"""The Gram matrix's backward: autograd's two matmuls against one, 2·sym(dG)·F, in one process.

    python benchmarks/bench_gram.py [--size 512] [--rounds 7]

For each of VGG-19's style layers at a 4:3 picture of ``--size`` px, forward and backward of the Gram
matrix as plain autograd computes it (two matmuls in the backward), and as stylefw's ``gram`` does (a custom
autograd Function whose backward is the single matmul (dG + dGᵀ)·F / (C·H·W)). Rounds alternate between
the two; each prints the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stylefw.plugins.losses import gram

# (channels, downsampling) of relu1_1 .. relu5_1
LAYERS = {"relu1_1": (64, 1), "relu2_1": (128, 2), "relu3_1": (256, 4), "relu4_1": (512, 8), "relu5_1": (512, 16)}


def autograd_gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def seconds(function, features: torch.Tensor, target: torch.Tensor, repeats: int = 3) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        features.grad = None
        (function(features) - target).pow(2).sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    height, width = args.size * 3 // 4, args.size
    print(f"{width}×{height} px, CPU, {torch.get_num_threads()} threads, {args.rounds} rounds; seconds for forward + backward")
    total = {"autograd": [], "one matmul": []}
    for layer, (channels, down) in LAYERS.items():
        features = torch.rand(1, channels, height // down, width // down, requires_grad=True)
        target = gram(features.detach()) * 0.9
        timed = {"autograd": [], "one matmul": []}
        for _ in range(args.rounds):
            timed["autograd"].append(seconds(autograd_gram, features, target))
            timed["one matmul"].append(seconds(gram, features, target))
        medians = {name: statistics.median(values) for name, values in timed.items()}
        for name in total:
            total[name].append(medians[name])
        print(f"  {layer}: autograd {medians['autograd'] * 1000:.1f} ms, one matmul {medians['one matmul'] * 1000:.1f} ms "
              f"({medians['one matmul'] / medians['autograd']:.2f}×)")
    print(f"all five layers: autograd {sum(total['autograd']) * 1000:.1f} ms, one matmul "
          f"{sum(total['one matmul']) * 1000:.1f} ms ({sum(total['one matmul']) / sum(total['autograd']):.2f}×)")


if __name__ == "__main__":
    main()
