"""Regenerate the plugin reference in README.md, and the example plugin's file listings, from the code.

    python scripts/plugin_docs.py           rewrite the generated blocks
    python scripts/plugin_docs.py --check   list the files whose blocks are out of date, and exit 1 if any is

A block runs from ``<!-- begin WHAT -->`` to ``<!-- end WHAT -->``. ``reference`` is made from the docstrings
and signatures in ``stylefw.hookspecs`` and ``stylefw.contracts``: every hook, every Protocol that module
exports, and every record of it that those name. ``file PATH`` is the file at PATH (relative to the README) as
a code block. tests/test_plugin_docs.py fails when a block is out of date.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from stylefw import contracts, hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (ROOT / "README.md", ROOT / "tests" / "example_plugin" / "README.md")
BLOCK = re.compile(r"(<!-- begin (?P<what>[^()\n]+?)(?: \([^)\n]*\))? -->\n)(?P<body>.*?)(<!-- end (?P=what) -->)",
                   re.DOTALL)
LANGUAGES = {".py": "python", ".toml": "toml", ".yaml": "yaml"}


def markdown(docstring: str | None) -> str:
    """A docstring's paragraphs as one Markdown paragraph, ``code`` written as `code`."""
    paragraphs = inspect.cleandoc(docstring or "").split("\n\n")
    return " ".join(" ".join(paragraph.split()) for paragraph in paragraphs).replace("``", "`")


def signature(function: Callable[..., Any], name: str) -> str:
    """``name(parameters) -> result`` as written in the source, without ``self``."""
    text = str(inspect.signature(function)).replace("'", "")
    return name + re.sub(r"^\(self(, )?", "(", text)


def hooks() -> list[Callable[..., Any]]:
    return [value for value in vars(hookspecs).values() if hasattr(value, "stylefw_spec")]


def exported() -> list[type]:
    return [value for name in contracts.__all__ if isinstance(value := getattr(contracts, name), type)]


def is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def members(cls: type) -> Iterator[str]:
    """The documented lines for a class's fields, properties and public methods (and ``__call__``)."""
    if dataclasses.is_dataclass(cls):
        # fields left out of repr are a record's plumbing (tensors, callables), read through its methods
        yield from (f"- `{field.name}: {field.type}`" for field in dataclasses.fields(cls) if field.repr)
    for name, value in vars(cls).items():
        if isinstance(value, property):
            returns = inspect.signature(value.fget).return_annotation
            yield f"- `{name}: {returns}`" + (f": {markdown(value.__doc__)}" if value.__doc__ else "")
        elif inspect.isfunction(value) and (not name.startswith("_") or name == "__call__"):
            yield f"- `{signature(value, name)}`" + (f": {markdown(value.__doc__)}" if value.__doc__ else "")


def named_records(texts: list[str]) -> list[type]:
    """The records of ``stylefw.contracts`` that ``texts`` name, and those their members name, in module order."""
    records = {cls.__name__: cls for cls in exported() if not is_protocol(cls)}
    found: set[str] = set()
    pending = list(texts)
    while pending:
        line = pending.pop()
        code = re.search(r"`([^`]*)`", line)  # a member line's signature, not its docstring's prose
        for word in re.findall(r"\w+", code.group(1) if code else line):
            if word in records and word not in found:
                found.add(word)
                pending.extend(members(records[word]))
    return [cls for name, cls in records.items() if name in found]


def reference() -> str:
    """The hooks, the Protocols a plugin implements and the records it is given, as Markdown."""
    lines = ["### The hooks", ""]
    # every hook returns None, so the README leaves that out
    lines += [f"- **`{signature(hook, hook.__name__).removesuffix(' -> None')}`**: {markdown(hook.__doc__)}"
              for hook in hooks()]
    lines += ["", "### What a plugin implements", ""]
    protocols = [cls for cls in exported() if is_protocol(cls)]
    for cls in protocols:
        lines += [f"**`{cls.__name__}`**: {markdown(cls.__doc__)}", "", *members(cls), ""]
    lines += ["### What a plugin is given", ""]
    named = [signature(hook, "") for hook in hooks()] + [line for cls in protocols for line in members(cls)]
    for cls in named_records(named):
        lines += [f"**`{cls.__name__}`**: {markdown(cls.__doc__)}", "", *members(cls), ""]
    return "\n".join(lines)


def listing(document: Path, path: str) -> str:
    source = document.parent / path
    return f"```{LANGUAGES.get(source.suffix, '')}\n{source.read_text(encoding='utf-8').rstrip()}\n```\n"


def render(document: Path) -> str:
    """``document`` with every generated block made anew."""
    def block(match: re.Match[str]) -> str:
        what = match["what"]
        body = reference() + "\n" if what == "reference" else listing(document, what.removeprefix("file "))
        return f"{match[1]}{body}{match[4]}"

    return BLOCK.sub(block, document.read_text(encoding="utf-8"))


def stale() -> list[Path]:
    """The documents whose generated blocks differ from what the code says now."""
    return [document for document in DOCUMENTS if render(document) != document.read_text(encoding="utf-8")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    out_of_date = stale()
    for document in out_of_date:
        print(f"{document.relative_to(ROOT)}: {'out of date' if args.check else 'rewritten'}")
        if not args.check:
            document.write_text(render(document), encoding="utf-8")
    return 1 if args.check and out_of_date else 0


if __name__ == "__main__":
    sys.exit(main())
