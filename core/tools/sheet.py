"""A labelled contact sheet of a batch: the contents as rows, the styles and grid values as columns.

The sheet is a PNG whose text chunk ``stylefw:sheet`` records its layout (the row and column labels, the
cell size and each cell's job), so a program can read back what a person sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from ..engine.files import write_atomic

__all__ = ["Cell", "Sheet", "contact_sheet", "write_sheet", "SHEET_KEY"]

SHEET_KEY = "stylefw:sheet"
PAD, FONT_SIZE, LINE = 8, 14, 18
BACKGROUND, INK, MISSING = (255, 255, 255), (20, 20, 20), (200, 200, 200)


@dataclass(frozen=True)
class Cell:
    """One job's place on the sheet: its row and column, its picture (None: none to show) and a note."""

    row: str
    column: tuple[str, ...]
    picture: Path | None
    note: str = ""


@dataclass(frozen=True)
class Sheet:
    """The drawn sheet and its layout."""

    image: Image.Image
    rows: tuple[str, ...]
    columns: tuple[tuple[str, ...], ...]
    cell: int
    origin: tuple[int, int]  # where the first cell's box starts, left and top

    def layout(self) -> dict[str, Any]:
        return {"rows": list(self.rows), "columns": [list(column) for column in self.columns], "cell": self.cell,
                "origin": list(self.origin), "size": list(self.image.size)}


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (TypeError, OSError):  # a Pillow built without FreeType has only its small bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, *, keep_end: bool = False) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` pixels wide; with ``keep_end`` the
    start goes instead (``…weight=1e4``: a grid label's value is what tells columns apart)."""
    if draw.textlength(text, font=font) <= width:
        return text
    shown = lambda: "…" + text if keep_end else text + "…"
    while text and draw.textlength(shown(), font=font) > width:
        text = text[1:] if keep_end else text[:-1]
    return shown()


def contact_sheet(cells: Sequence[Cell], *, cell: int = 256) -> Sheet:
    """Lay ``cells`` out on a grid, a row per distinct ``row`` and a column per distinct ``column`` (in the
    order they first appear), each picture fitted into a ``cell``-pixel square and labelled. A column's label
    is a line per item: the style's name, then each grid value."""
    rows = tuple(dict.fromkeys(item.row for item in cells))
    columns = tuple(dict.fromkeys(item.column for item in cells))
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = min(max((int(measure.textlength(row, font=font)) for row in rows), default=0), 2 * cell) + 2 * PAD
    header = max((len(column) for column in columns), default=1) * LINE + 2 * PAD
    left, top = label_width, header
    sheet = Image.new("RGB", (left + len(columns) * (cell + PAD) + PAD, top + len(rows) * (cell + PAD) + PAD),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, column in enumerate(columns):
        x = left + PAD + index * (cell + PAD)
        for line, text in enumerate(column):
            draw.text((x, PAD + line * LINE), _fit(draw, text, font, cell, keep_end=line > 0), fill=INK, font=font)
    for index, row in enumerate(rows):
        y = top + PAD + index * (cell + PAD)
        draw.text((PAD, y + cell // 2 - LINE // 2), _fit(draw, row, font, label_width - 2 * PAD), fill=INK, font=font)
    for item in cells:
        x = left + PAD + columns.index(item.column) * (cell + PAD)
        y = top + PAD + rows.index(item.row) * (cell + PAD)
        _paste(sheet, draw, item, (x, y), cell, font)
    return Sheet(sheet, rows, columns, cell, (left + PAD, top + PAD))


def _paste(sheet: Image.Image, draw: ImageDraw.ImageDraw, item: Cell, at: tuple[int, int], cell: int,
           font: Any) -> None:
    """The cell's picture, fitted and centred in its square; a grey square with the note when there is none."""
    x, y = at
    picture = None
    if item.picture is not None:
        try:
            with Image.open(item.picture) as opened:
                picture = opened.convert("RGB")
        except OSError:
            picture = None
    if picture is None:
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=MISSING)
    else:
        scale = cell / max(picture.size)  # up or down: a sweep at 64 px is as easy to compare as one at 1024
        fitted = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(fitted, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)
        sheet.paste(picture, (x + (cell - picture.width) // 2, y + (cell - picture.height) // 2))
    if item.note:
        draw.text((x + PAD, y + cell - LINE - PAD), _fit(draw, item.note, font, cell - 2 * PAD), fill=INK, font=font,
                  stroke_width=2, stroke_fill=BACKGROUND)


def write_sheet(sheet: Sheet, path: Path) -> Path:
    """Write the sheet as a PNG with its layout in the ``stylefw:sheet`` text chunk, whole or not at all."""
    info = PngImagePlugin.PngInfo()
    info.add_text(SHEET_KEY, json.dumps(sheet.layout()))

    write_atomic(path, lambda handle: sheet.image.save(handle, format="PNG", pnginfo=info))
    return path
