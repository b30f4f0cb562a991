"""``--plot`` and ``stylefw plot``: a run's loss curves, drawn with matplotlib (the optional ``plot`` extra).

The plot reads a sidecar (``out.png.json``), so it can be made for any finished run: the total and each
term's weighted value over the run's steps, on a log scale, with the stages of a multi-scale run marked.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Mapping

from ..engine.files import write_atomic
from ..errors import UserError

__all__ = ["require_matplotlib", "plot_path", "plot_sidecar", "plot_trace"]

FORMATS = {".svg": "svg", ".png": "png"}
HINT = "pip install 'stylefw[plot]' (matplotlib)"


def require_matplotlib() -> None:
    """A UserError, saying how to install it, when matplotlib is missing: a run asked to plot checks first."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("plotting needs matplotlib, which is not installed", hint=HINT)


def plot_path(output: Path | str) -> Path:
    """``out.png.losses.svg`` for the output ``out.png``."""
    output = Path(output)
    return output.with_name(f"{output.name}.losses.svg")


def plot_sidecar(sidecar: Path | str, path: Path | str | None = None) -> Path:
    """Plot the run whose sidecar is ``sidecar`` to ``path`` (default: beside its output, ``.losses.svg``)."""
    sidecar = Path(sidecar)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {sidecar}: {exc.strerror or exc}",
                        hint="give an output's sidecar, such as out.png.json") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{sidecar} is not JSON", hint="give an output's sidecar, such as out.png.json") from None
    if not isinstance(data, dict) or not isinstance(data.get("trace"), list):
        raise UserError(f"{sidecar} is not a stylefw output's sidecar: it has no 'trace'",
                        hint="give the .json file written beside an output, such as out.png.json")
    output = sidecar.with_suffix("") if sidecar.suffix == ".json" else sidecar
    return plot_trace(data["trace"], Path(path) if path is not None else plot_path(output), title=output.name)


def plot_trace(trace: list[Mapping[str, Any]], path: Path, *, title: str = "") -> Path:
    """Draw ``trace`` (a sidecar's: one mapping per step) as SVG or PNG, by ``path``'s suffix, atomically."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"cannot plot to {path}: unknown format '{path.suffix}'", hint="use .svg or .png")
    if not trace:
        raise UserError(f"no steps to plot for {title or path}", hint="the run stopped before its first step")
    require_matplotlib()
    # optional: matplotlib is the plot extra's. A figure of its own, drawn to a file: no window, no global state
    from matplotlib.figure import Figure

    steps = list(range(1, len(trace) + 1))  # the run's steps, counted over its stages
    labels = list(trace[0]["terms"])
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(steps, [row["loss"] for row in trace], color="black", linewidth=2, label="total")
    for label in labels:
        axes.plot(steps, [row["terms"][label]["weighted"] for row in trace], linewidth=1, label=f"{label} (weighted)")
    for index in range(1, len(trace)):
        if trace[index]["stage"] != trace[index - 1]["stage"]:
            axes.axvline(index + 0.5, color="grey", linestyle="--", linewidth=0.8)
            axes.annotate(f"stage {trace[index]['stage']} · {trace[index]['size']} px", (index + 0.5, 1),
                          xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points",
                          fontsize=8, color="grey")
    if all(row["loss"] > 0 for row in trace):
        axes.set_yscale("log", nonpositive="mask")  # a term that is 0 (content at the first step) leaves a gap
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend(fontsize=8)
    axes.grid(True, which="major", alpha=0.3)
    write_atomic(path, lambda handle: figure.savefig(handle, format=kind))
    return path
