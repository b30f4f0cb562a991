"""What the commands share: their common arguments, how a run is watched (the progress display and the preview,
each a plugin registered for the run), tables, and whose fault an error is."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any, Iterator

from ..errors import StylefwError, UserError
from ..hooks.faults import classify as classify_error
from ..hooks.manager import blocked_plugins
from ..hooks.registry import Registry, default_registry

__all__ = ["EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "EXIT_INTERRUPTED", "recipe_arguments", "run_arguments",
           "preview_arguments", "overrides_from", "registry_of", "watching", "preview", "linger", "renderer",
           "table", "classify", "summary"]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """A recipe and the shortcuts that override its keys."""
    parser.add_argument("recipe", help="a recipe file, or the name of a built-in recipe such as vangogh.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, e.g. --set optimizer.lr=0.05 or --set losses[1].weight=1e5")
    parser.add_argument("--content", metavar="IMAGE", help="content image (path or URL)")
    parser.add_argument("--style", action="append", metavar="IMAGE", help="style image; repeat to blend several")
    parser.add_argument("--output", metavar="FILE", help="output image (.png, .jpg or .webp)")
    parser.add_argument("--size", type=int, metavar="PX", help="long edge of the output in pixels")
    parser.add_argument("--steps", type=int, help="number of optimizer steps")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, help="random seed")


def preview_arguments(parser: argparse.ArgumentParser, what: str = "the run") -> None:
    """``--preview`` and its options."""
    parser.add_argument("--preview", action="store_true",
                        help="watch the run in a browser: serves a page on 127.0.0.1 and prints its URL")
    parser.add_argument("--open", action="store_true", help="with --preview, open the page in the browser")
    parser.add_argument("--preview-port", type=int, default=0, metavar="PORT",
                        help="the preview's port (default: a free one)")
    parser.add_argument("--preview-linger", type=float, metavar="SECONDS",
                        help=f"keep the preview up this long after {what} ends (default: until Ctrl-C)")


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a command that runs: progress, the preview, and checkpoints."""
    parser.add_argument("--progress", choices=("auto", "rich", "plain"), default="auto",
                        help="rich display, plain log lines, or auto (rich on a terminal)")
    preview_arguments(parser)
    parser.add_argument("--plot", action="store_true",
                        help="also write OUTPUT.losses.svg, the loss curves (needs matplotlib: stylefw[plot])")
    parser.add_argument("--log-every", type=int, metavar="N", help="with plain progress, a line every N steps")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="write OUTPUT.ckpt every N steps of the run, for 'stylefw resume'")


def overrides_from(args: argparse.Namespace) -> list[Any]:
    """``--set`` strings, then the shortcuts as (key, value) pairs; override paths resolve against the cwd."""
    overrides: list[Any] = list(args.sets)
    if getattr(args, "content", None):
        overrides.append(("content", args.content))
    if getattr(args, "style", None):
        overrides.append(("style", args.style))
    if getattr(args, "output", None):
        overrides.append(("output", args.output))
    for key in ("size", "steps", "device", "seed", "checkpoint_every"):
        if getattr(args, key, None) is not None:
            overrides.append((key, getattr(args, key)))
    return overrides


def registry_of(args: argparse.Namespace) -> Registry:
    """The registry this invocation runs with: the process's, or one without the ``--no-plugin`` plugins."""
    return getattr(args, "registry", None) or default_registry()


@contextlib.contextmanager
def watching(args: argparse.Namespace, **plugins: Any) -> Iterator[None]:
    """Register each of ``plugins`` (name=plugin, None for none) on the invocation's plugin manager for the
    duration, but for those ``--no-plugin`` or ``STYLEFW_BLOCK_PLUGINS`` leave out."""
    manager = registry_of(args).manager
    blocked = blocked_plugins() | set(getattr(args, "no_plugin", None) or ())
    chosen = {name: plugin for name, plugin in plugins.items()
              if plugin is not None and name not in blocked and manager is not None}
    for name, plugin in chosen.items():
        manager.register(plugin, name=name)
    try:
        yield
    finally:
        for name in chosen:
            manager.unregister(name=name)


@contextlib.contextmanager
def preview(args: argparse.Namespace) -> Iterator[Any]:
    """With --preview, the page's server for the duration, its URL printed (and opened with --open)."""
    if not args.preview:
        yield None
        return
    from ..tools.preview import Preview  # deferred: start-up time (torch); only a previewed run needs it
    from ..tools.preview_server import PreviewServer

    watched = Preview()
    try:
        server = PreviewServer(watched, args.preview_port)
    except OSError as exc:
        raise UserError(f"cannot serve the preview on port {args.preview_port}: {exc.strerror or exc}",
                        context="--preview-port", hint="choose another port, or leave it out for a free one") from None
    with server:
        print(f"preview: {server.url}", flush=True)
        if args.open:
            import webbrowser  # deferred: start-up time; only --open needs a browser

            webbrowser.open(server.url)
        yield watched


def linger(args: argparse.Namespace, watched: Any) -> None:
    """Keep the preview's page up after the run: for --preview-linger seconds, or until Ctrl-C."""
    if watched is None:
        return
    if args.preview_linger is None:
        print("the preview stays up; Ctrl-C to close it", file=sys.stderr, flush=True)
    try:
        time.sleep(args.preview_linger if args.preview_linger is not None else 10**9)
    except KeyboardInterrupt:
        pass


def renderer(args: argparse.Namespace) -> Any:
    """The run's progress display, as ``--quiet`` and ``--progress`` choose."""
    # deferred: start-up time (rich's display); only a command that runs needs it
    from ..plugins.progress import PlainRenderer, QuietRenderer, RichRenderer

    if args.quiet:
        return QuietRenderer()
    mode = args.progress
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "plain"
    if mode == "rich":
        return RichRenderer()
    return PlainRenderer(args.log_every)


def table(*columns: str) -> Any:
    """Name columns never wrap or truncate (users copy them); only the last, free-text column wraps."""
    from rich.table import Table  # deferred: start-up time

    result = Table(box=None, padding=(0, 2))
    for column in columns[:-1]:
        result.add_column(column, no_wrap=True, min_width=len(column))
    result.add_column(columns[-1], ratio=1)
    return result


def classify(exc: BaseException, registry: Registry | None = None) -> StylefwError:
    """Whose fault ``exc`` is, judged with the invocation's plugins (``registry``'s; the installed ones when
    there is none yet, and none when they cannot even be loaded)."""
    if registry is None:
        try:
            registry = default_registry()
        except Exception:  # a plugin that cannot load: nothing can be blamed on a plugin
            return classify_error(exc, None)
    return classify_error(exc, registry.manager)


def summary(factory: Any) -> str:
    """The first line of the factory's docstring; for a class or function of torch's, its name instead (torch's
    docstrings open with markup, not a summary)."""
    module = getattr(factory, "__module__", None) or ""
    if module.split(".")[0] == "torch":
        return f"{module}.{getattr(factory, '__qualname__', '')}".rstrip(".")
    doc = (getattr(factory, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""
