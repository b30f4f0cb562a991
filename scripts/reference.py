"""The documentation's reference, made from the code so that it cannot drift from it.

- ``reference/recipe-keys.md``: every recipe key, from its declaration on ``stylefw.Recipe``, and every installed
  plugin's options, from its factory's signature;
- ``reference/commands.md``: every command and option, from the command line's parsers;
- ``reference/hooks.md``: every hook, from ``stylefw.hooks.specs``;
- ``reference/contracts.md``: what a plugin implements and is given, from ``stylefw.contracts``;
- ``reference/plugins.md``: the built-in plugins, from their entry points.

MkDocs runs this module as a hook (``mkdocs.yml``): a page holding ``<!-- stylefw:generated -->`` gets its
reference there. Run as a script, it rewrites the example plugin's README, whose blocks
``<!-- begin file PATH -->`` … ``<!-- end file PATH -->`` hold the files of the package as they are::

    python scripts/reference.py           rewrite the example plugin's file listings
    python scripts/reference.py --check   exit 1 if they are out of date

tests/test_docs.py checks both.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
import types
import typing
from collections import abc
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from stylefw import contracts
from stylefw.cli import build_parser
from stylefw.contracts.recipe import REQUIRED, keys
from stylefw.hooks import specs
from stylefw.hooks.manager import builtin_plugins
from stylefw.hooks.registry import default_registry
from stylefw.markers import File, Range

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- stylefw:generated -->"
EXAMPLE_README = ROOT / "tests" / "example_plugin" / "README.md"
BLOCK = re.compile(r"(<!-- begin file (?P<path>[^\n]+?) -->\n)(?P<body>.*?)(<!-- end file (?P=path) -->)", re.DOTALL)
LANGUAGES = {".py": "python", ".toml": "toml", ".yaml": "yaml"}
# the kinds whose items a recipe names, and the parameters their factories get from stylefw rather than a recipe
OPTIONS = {"backbone": ("backbone", 0, ()), "loss": ("losses[i]", 0, ()), "optimizer": ("optimizer", 1, ()),
           "scheduler": ("optimizer.schedule", 1, ("total_steps",))}
# the plugins the command line registers for a run, beside the entry points: name -> the module that says what it does
COMMAND_LINE_PLUGINS = {"progress": "stylefw.plugins.progress", "preview": "stylefw.tools.preview"}


# -- text -----------------------------------------------------------------------------------------------------------


def markdown(docstring: str | None) -> str:
    """A docstring's paragraphs as Markdown paragraphs, ``code`` written as `code`."""
    paragraphs = inspect.cleandoc(docstring or "").split("\n\n")
    return "\n\n".join(_paragraph(paragraph) for paragraph in paragraphs if paragraph.strip())


def _paragraph(text: str) -> str:
    lines = text.splitlines()
    if any(line.lstrip().startswith("- ") for line in lines):  # a list: keep its items on lines of their own
        items: list[str] = []
        for line in lines:
            if line.lstrip().startswith("- ") or not items:
                items.append(line.strip())
            else:
                items[-1] += " " + line.strip()
        return "\n".join(items).replace("``", "`")
    if text.rstrip().endswith("::") or lines[0].startswith("    "):  # a code example
        return "```\n" + inspect.cleandoc(text).removesuffix("::") + "\n```"
    return " ".join(text.split()).replace("``", "`")


def first_paragraph(docstring: str | None) -> str:
    return markdown(inspect.cleandoc(docstring or "").split("\n\n")[0])


def signature(function: Callable[..., Any], name: str) -> str:
    """``name(parameters) -> result`` as written in the source, without ``self``."""
    text = str(inspect.signature(function)).replace("'", "")
    return name + re.sub(r"^\(self(, )?", "(", text)


def cell(text: Any) -> str:
    """``text`` made safe for one cell of a Markdown table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def takes(annotation: Any) -> str:
    """What a value of ``annotation`` may be, in words: ``a whole number, 16 to 16384``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        words = [takes(args[0])]
        for marker in annotation.__metadata__:
            if isinstance(marker, Range):
                words.append(marker.describe())
            elif isinstance(marker, File):
                return marker.describe()
        return ", ".join(words)
    if origin is typing.Literal:
        return " or ".join(f"`{choice}`" for choice in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(takes(member) for member in args if member is not type(None)) + (
            ", or nothing" if type(None) in args else "")
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)}: " + ", ".join(takes(member) for member in args)
    if origin in (list, tuple, abc.Sequence, abc.MutableSequence):
        return "a list" + (f" of {takes(args[0])}" if args else "")
    if origin in (dict, abc.Mapping, abc.MutableMapping):
        return "a mapping"
    return {int: "a whole number", float: "a number", bool: "`true` or `false`", str: "text"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def yaml_value(value: Any) -> str:
    """A default as a recipe would write it."""
    if value is REQUIRED:
        return "**required**"
    if value is None:
        return "none"
    return f"`{yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix('...').strip()}`"


# -- the pages ------------------------------------------------------------------------------------------------------


def recipe_keys() -> str:
    """Every recipe key from its declaration, then every installed plugin's options."""
    hints = typing.get_type_hints(contracts.Recipe, include_extras=True)
    lines = ["| key | takes | default | meaning |", "|---|---|---|---|"]
    for field, key in keys():
        lines.append(f"| `{key.name or field.name}` | {cell(key.takes or takes(hints[field.name]))} | "
                     f"{cell(yaml_value(key.default))} | {cell(key.doc)} |")
    lines += ["", "## The plugins' options", "",
              "A recipe passes every other key of `backbone`, of a loss, of `optimizer` and of `optimizer.schedule` "
              "to the plugin it names, which declares them in its factory's signature; validation checks them "
              "there. These are the installed plugins' (`stylefw list` shows them too)."]
    registry = default_registry()
    for kind, (where, skip, given) in OPTIONS.items():
        for entry in registry.entries(kind):
            lines += ["", f"### {kind} `{entry.name}`", "", f"From the plugin `{entry.plugin}`. "
                      f"{first_paragraph(entry.factory.__doc__)}".rstrip(), "", *options(entry.factory, where, skip, given)]
    return "\n".join(lines)


def options(factory: Any, where: str, skip: int, given: tuple[str, ...]) -> list[str]:
    """A table of the options ``factory`` declares, as ``where.NAME``."""
    try:
        parameters = list(inspect.signature(factory, eval_str=True).parameters.values())[skip:]
    except (TypeError, ValueError, NameError):
        return ["Its options cannot be read from its signature."]
    rows = [(parameter.name, parameter.annotation, parameter.default) for parameter in parameters
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            and parameter.name not in given]
    if not rows:
        return ["It takes no options."]
    lines = ["| key | takes | default |", "|---|---|---|"]
    for name, annotation, default in rows:
        kind = "any value" if annotation is inspect.Parameter.empty else takes(annotation)
        shown = "**required**" if default is inspect.Parameter.empty else yaml_value(default)
        lines.append(f"| `{where}.{name}` | {cell(kind)} | {cell(shown)} |")
    return lines


def commands() -> str:
    """Every command, its usage and its options, from the parser the command line builds."""
    parser = build_parser(default_registry())
    lines = [f"Options every command takes: {options_of(parser)}", ""]
    for name, command in subcommands(parser).items():
        lines += command_section(f"stylefw {name}", command, level=2)
    return "\n".join(lines)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_section(title: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{title}`", "", cell(parser.description or "").strip(), "", "```",
             parser.format_usage().strip().removeprefix("usage: "), "```", ""]
    rows = [action for action in parser._actions if not isinstance(action, (argparse._HelpAction,
            argparse._SubParsersAction)) and action.dest not in ("debug", "quiet", "no_plugin")]
    if rows:
        lines += ["| argument | meaning |", "|---|---|"]
        for action in rows:
            flags = ", ".join(action.option_strings) or (action.metavar or action.dest)
            metavar = f" {action.metavar}" if action.option_strings and action.metavar else ""
            choices = f" ({', '.join(map(str, action.choices))})" if action.choices and not metavar else ""
            lines.append(f"| `{flags}{metavar}`{choices} | {cell(action.help or '')} |")
        lines.append("")
    for name, command in subcommands(parser).items():
        lines += command_section(f"{title} {name}", command, level + 1)
    return lines


def options_of(parser: argparse.ArgumentParser) -> str:
    shown = [action for action in parser._actions if action.option_strings and not isinstance(action, (
        argparse._HelpAction, argparse._VersionAction))]
    return "; ".join(f"`{', '.join(action.option_strings)}`: {action.help}" for action in shown)


def hooks() -> str:
    """Every hook, grouped by what it is for, with its signature and its docstring."""
    every = [value for value in vars(specs).values() if hasattr(value, "stylefw_spec")]
    groups = {"Registering what recipes name": [hook for hook in every if hook.__name__.startswith("register_")],
              "Taking part in runs": [hook for hook in every if hook.__name__.startswith("on_")]}
    lines: list[str] = []
    for title, group in groups.items():
        lines += [f"## {title}", ""]
        for hook in group:
            lines += [f"### `{signature(hook, hook.__name__).removesuffix(' -> None')}`", "",
                      markdown(hook.__doc__), ""]
    return "\n".join(lines)


def exported() -> list[type]:
    return [value for name in contracts.__all__ if isinstance(value := getattr(contracts, name), type)]


def is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def members(cls: type) -> Iterator[str]:
    """The documented lines for a class's fields, properties and public methods (and ``__call__``)."""
    if dataclasses.is_dataclass(cls):
        # fields left out of repr are a record's plumbing (tensors, callables), read through its methods
        yield from (f"- `{field.name}: {field.type}`" for field in dataclasses.fields(cls) if field.repr
                    and "key" not in field.metadata)
    for name, value in vars(cls).items():
        if isinstance(value, property):
            returns = inspect.signature(value.fget).return_annotation
            yield f"- `{name}: {returns}`" + (f": {first_paragraph(value.__doc__)}" if value.__doc__ else "")
        elif inspect.isfunction(value) and (not name.startswith("_") or name == "__call__"):
            yield f"- `{signature(value, name)}`" + (f": {first_paragraph(value.__doc__)}" if value.__doc__ else "")


def contracts_page() -> str:
    """The Protocols a plugin implements, then the records and events it is given."""
    lines = ["## What a plugin implements", ""]
    for cls in (cls for cls in exported() if is_protocol(cls)):
        lines += [f"### `{cls.__name__}`", "", markdown(cls.__doc__), "", *members(cls), ""]
    lines += ["## What a plugin is given", ""]
    for cls in (cls for cls in exported() if not is_protocol(cls)):
        if cls.__name__ == "Recipe":
            lines += ["### `Recipe`", "", markdown(cls.__doc__), "",
                      "Its fields are the recipe keys, listed on the [recipe keys](recipe-keys.md) page.",
                      "", *members(cls), ""]
        else:
            lines += [f"### `{cls.__name__}`", "", markdown(cls.__doc__), "", *members(cls), ""]
    return "\n".join(lines)


def plugins() -> str:
    """The built-in plugins: their names, what they do, and those the command line adds for a run."""
    lines = ["| plugin | registered | what it does |", "|---|---|---|"]
    for entry_point in builtin_plugins():
        module = entry_point.module
        loaded = entry_point.load()
        described = getattr(loaded, "modules", None)  # a LazyPlugin: the modules implementing its hooks
        text = "; ".join(first_paragraph(importlib.import_module(name).__doc__) for name in
                         dict.fromkeys(described.values())) if described else first_paragraph(
            importlib.import_module(module).__doc__)
        lines.append(f"| `{entry_point.name}` | always (entry point `{entry_point.value}`) | {cell(text)} |")
    for name, module in COMMAND_LINE_PLUGINS.items():
        lines.append(f"| `{name}` | by the command line, for a run | "
                     f"{cell(first_paragraph(importlib.import_module(module).__doc__))} |")
    return "\n".join(lines)


PAGES: dict[str, Callable[[], str]] = {
    "reference/recipe-keys.md": recipe_keys,
    "reference/commands.md": commands,
    "reference/hooks.md": hooks,
    "reference/contracts.md": contracts_page,
    "reference/plugins.md": plugins,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs' hook: the reference in place of the marker on the pages that hold one."""
    render = PAGES.get(page.file.src_uri)
    return markdown.replace(MARKER, render()) if render is not None and MARKER in markdown else markdown


# -- the example plugin's README --------------------------------------------------------------------------------------


def listing(document: Path, path: str) -> str:
    source = document.parent / path
    return f"```{LANGUAGES.get(source.suffix, '')}\n{source.read_text(encoding='utf-8').rstrip()}\n```\n"


def render(document: Path) -> str:
    """``document`` with every file listing made anew."""
    return BLOCK.sub(lambda match: f"{match[1]}{listing(document, match['path'])}{match[4]}",
                     document.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite the example plugin's file listings from its files.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a listing is out of date")
    args = parser.parse_args(argv)
    current = render(EXAMPLE_README)
    if current == EXAMPLE_README.read_text(encoding="utf-8"):
        return 0
    print(f"{EXAMPLE_README.relative_to(ROOT)}: {'out of date' if args.check else 'rewritten'}")
    if not args.check:
        EXAMPLE_README.write_text(current, encoding="utf-8")
    return 1 if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
