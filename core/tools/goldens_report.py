"""What a recipe check says: where a run left its golden, the pictures side by side, and what re-recording changed;
and the golden's pictures and versions as they are stored."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image, ImageDraw

from ..engine.provenance import versions
from ..hooks.registry import Registry

__all__ = ["failure_report", "what_changed", "first_departure", "image_difference", "encode_png", "decode_png",
           "golden_versions", "relative_change"]

# steps shown before and after the first one out of tolerance
CONTEXT = 1
# the difference panel is amplified so that a drift of a few grey levels is visible
AMPLIFY = 8
PANEL_WIDTH = 192


def failure_report(recipe: Path, golden: Mapping[str, Any], run: Mapping[str, Any], failures: Path,
                   now: Mapping[str, str]) -> tuple[str, str]:
    """``(reason, report)`` for a run that left its golden, or ``("", "")`` for one that matches it; ``now`` are
    the versions running (``golden_versions``)."""
    tolerance = golden["tolerance"]
    steps = _steps(golden, run)
    departure = first_departure(steps, tolerance)
    expected, actual = decode_png(golden["image"]), decode_png(run["image"])
    difference = image_difference(expected, actual)
    picture_off = difference is None or difference > tolerance["image"]
    if departure is None and not picture_off:
        return "", ""
    reasons, lines = [], []
    if departure is not None:
        where = "the noise image" if departure == 0 else f"step {departure}"
        reasons.append(f"the loss trace leaves its tolerance at {where}")
        lines += [f"the loss trace leaves its tolerance at {where} (allowed: {_allowed(departure, tolerance)})",
                  *_table(steps, departure, tolerance)]
    sheet = _write_sheet(expected, actual, failures / f"{recipe.stem}.png")
    if difference is None:
        reasons.append("the final picture has a different size")
        lines.append(f"the final picture is {actual.width}×{actual.height} px, the golden's "
                     f"{expected.width}×{expected.height} px")
    elif picture_off:
        reasons.append(f"the final picture is off by {difference:.2f} grey levels")
        lines.append(f"the final picture has a mean difference of {difference:.2f} grey levels "
                     f"(allowed {tolerance['image']})")
    lines.append(f"expected | actual | difference (x{AMPLIFY}): {sheet}")
    then = golden.get("versions", {})
    lines += ([f"versions, as recorded: {_versions(now)}"] if then == now else
              [f"recorded with: {_versions(then)}", f"running:       {_versions(now)}"])
    lines += [f"if the change is intended, re-record: stylefw check --record {recipe}  (or pytest --stylefw-record)"]
    return "; ".join(reasons), "\n".join(lines)


def _steps(golden: Mapping[str, Any], run: Mapping[str, Any]) -> list[tuple[dict | None, dict | None]]:
    """(expected, actual) terms for the noise image, then each step; None where one of them has no such step."""
    wanted, got = golden["trace"], run["trace"]
    pairs = [(golden["initial"], run["initial"])]
    for number in range(max(len(wanted), len(got))):
        pairs.append((wanted[number] if number < len(wanted) else None, got[number] if number < len(got) else None))
    return pairs


def first_departure(steps: list[tuple[dict | None, dict | None]], tolerance: Mapping[str, float]) -> int | None:
    """The first step (0: the noise image) where a term is missing, new, or off by more than its tolerance."""
    for number, (want, got) in enumerate(steps):
        if want is None or got is None or want.keys() != got.keys():
            return number
        allowed = _tolerance(number, tolerance) * abs(want["total"])
        if any(abs(got[key] - want[key]) > allowed for key in want):
            return number
    return None


def _tolerance(number: int, tolerance: Mapping[str, float]) -> float:
    return tolerance["initial"] if number == 0 else tolerance["trace"]


def _allowed(number: int, tolerance: Mapping[str, float]) -> str:
    return f"{_tolerance(number, tolerance):.3g} of the step's total"


def _table(steps: list[tuple[dict | None, dict | None]], departure: int, tolerance: Mapping[str, float]) -> list[str]:
    """Expected against actual, every term, for the steps around ``departure``; ``<`` marks what is out of tolerance."""
    rows = [f"  {'step':>5}  {'term':12}  {'expected':>12}  {'actual':>12}  {'off by':>9}"]
    for number in range(max(0, departure - CONTEXT), min(len(steps), departure + CONTEXT + 1)):
        want, got = steps[number]
        label = "noise" if number == 0 else str(number)
        if want is None or got is None:
            rows.append(f"  {label:>5}  {'(no such step in the ' + ('golden' if want is None else 'run') + ')'}")
            continue
        allowed = _tolerance(number, tolerance) * abs(want["total"])
        for key in dict.fromkeys([*want, *got]):
            expected, actual = want.get(key), got.get(key)
            if expected is None or actual is None:
                off_by, marked = ("new" if expected is None else "gone"), True
            else:
                off_by, marked = _percent(actual - expected, want["total"]), abs(actual - expected) > allowed
            rows.append(f"  {label:>5}  {key:12}  {_number(expected):>12}  {_number(actual):>12}  {off_by:>9}"
                        + ("  <" if marked else ""))
    return rows


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:12.6g}"


def _percent(difference: float, total: float) -> str:
    """A difference as a signed share of the step's total."""
    return f"{100 * difference / abs(total):+.3g}%" if total else f"{difference:+.3g}"


def image_difference(expected: Image.Image, actual: Image.Image) -> float | None:
    """The mean absolute difference in grey levels (0 to 255) over every pixel and channel; None if the sizes differ."""
    if expected.size != actual.size:
        return None
    return float(np.abs(np.asarray(expected, np.int16) - np.asarray(actual, np.int16)).mean())


def _write_sheet(expected: Image.Image, actual: Image.Image, path: Path) -> Path:
    """expected | actual | amplified difference, enlarged to be seen, written to ``path``."""
    scale = max(1, PANEL_WIDTH // max(expected.width, actual.width))
    panels = [expected, actual]
    if expected.size == actual.size:
        difference = np.abs(np.asarray(expected, np.int16) - np.asarray(actual, np.int16)) * AMPLIFY
        panels.append(Image.fromarray(difference.clip(0, 255).astype(np.uint8)))
    panels = [panel.resize((panel.width * scale, panel.height * scale), Image.Resampling.NEAREST) for panel in panels]
    width, height = sum(panel.width for panel in panels) + 8 * (len(panels) - 1), max(p.height for p in panels) + 20
    sheet = Image.new("RGB", (width, height), "white")
    draw, left = ImageDraw.Draw(sheet), 0
    for panel, title in zip(panels, ("expected", "actual", f"difference x{AMPLIFY}")):
        sheet.paste(panel, (left, 20))
        draw.text((left + 4, 4), title, fill="black")
        left += panel.width + 8
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _versions(found: Mapping[str, str]) -> str:
    return " · ".join(f"{key} {value}" for key, value in found.items() if value) or "(not recorded)"


def what_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """One line on what re-recording changed: the last step's total, the picture, and the versions."""
    last = new["trace"][-1]["total"]
    if old is None:
        return f"new golden: {len(new['trace'])} steps, last total {last:.6g}"
    before = old["trace"][-1]["total"]
    difference = image_difference(decode_png(old["image"]), decode_png(new["image"]))
    picture = "a new size" if difference is None else f"{difference:.2f} grey levels"
    changed = [f"{key} {old.get('versions', {}).get(key)} -> {value}" for key, value in new["versions"].items()
               if old.get("versions", {}).get(key) != value]
    return (f"last total {before:.6g} -> {last:.6g} ({100 * relative_change(last, before):+.3g}%), picture moved by "
            f"{picture}; " + ("; ".join(changed) if changed else "same versions"))


def encode_png(image: Image.Image) -> str:
    """A picture as a golden stores it: PNG, in base64."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_png(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB")


def golden_versions(registry: Registry) -> dict[str, str]:
    """What a check depends on besides the recipe, as a golden records it: stylefw, torch and the CPU kernels it
    picked, Python, and the plugins' distributions."""
    found = versions(registry.manager)
    plugins = ", ".join(sorted(set(found["plugins"].values())))
    return {**{key: value for key, value in found.items() if key != "plugins"}, "plugins": plugins}


def relative_change(got: float, want: float) -> float:
    """``got`` against ``want`` as a fraction of ``want`` (0 when both are 0)."""
    if want == 0:
        return 0.0 if got == 0 else math.inf
    return (got - want) / abs(want)
