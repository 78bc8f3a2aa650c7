"""Card images, drawn with Pillow.

A theme-coloured gradient with a few soft shapes, the wordmark at the top, the
card text wrapped and sized to fit the middle, and a footer with the theme and
level. Rendering is CPU work: the bot calls :func:`render_card_async`, which runs
it in a thread so the event loop keeps serving other players.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vechnost_bot.game.content import THEMES
from vechnost_bot.storage.records import Language, ThemeId

__all__ = [
    "FONT_DIR",
    "RENDER_VERSION",
    "ImageFormat",
    "Layout",
    "fits",
    "layout_text",
    "render_card",
    "render_card_async",
    "wordmark",
]

FONT_DIR: Final = Path(__file__).parent / "fonts"
RENDER_VERSION: Final = 2
"""Part of every cache key of rendered images and file ids; bump when the look changes."""

ImageFormat = Literal["JPEG", "PNG"]

WIDTH: Final = 900
HEIGHT: Final = 1125
MARGIN: Final = 90
TEXT_TOP: Final = 210
TEXT_BOTTOM: Final = HEIGHT - 190
MAX_FONT: Final = 64
MIN_FONT: Final = 34
LINE_SPACING: Final = 1.28


@cache
def _font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONT_DIR / name), size)


def wordmark(language: Language) -> str:
    """The brand as written on the card: ВЕЧНОСТЬ in Russian, VECHNOST otherwise."""
    return "ВЕЧНОСТЬ" if language == "ru" else "VECHNOST"


@dataclass(frozen=True, slots=True)
class Layout:
    """The text of a card broken into lines at one font size."""

    size: int
    lines: tuple[str, ...]
    height: int


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str] | None:
    """Greedy word wrap; None when a single word is wider than ``width``."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            if font.getlength(word) > width:
                return None
            candidate = f"{current} {word}" if current else word
            if font.getlength(candidate) <= width:
                current = candidate
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


def layout_text(text: str) -> Layout | None:
    """The largest font size at which ``text`` fits the text box, or None if none does."""
    box_width = WIDTH - 2 * MARGIN
    box_height = TEXT_BOTTOM - TEXT_TOP
    for size in range(MAX_FONT, MIN_FONT - 1, -2):
        font = _font(size)
        lines = _wrap(text, font, box_width)
        if lines is None:
            continue
        height = round(len(lines) * size * LINE_SPACING)
        if height <= box_height:
            return Layout(size, tuple(lines), height)
    return None


def fits(text: str, language: Language) -> bool:
    """True when ``text`` fits on a card in ``language`` at a readable size."""
    del language  # one font and one box for every language today
    return bool(text.strip()) and layout_text(text) is not None


def _background(theme: ThemeId) -> Image.Image:
    info = THEMES[theme]
    top, bottom = info.colors
    mask = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    image = Image.composite(Image.new("RGB", (WIDTH, HEIGHT), bottom),
                            Image.new("RGB", (WIDTH, HEIGHT), top), mask)  # fmt: skip
    overlay = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    accent = info.accent
    draw.ellipse((-260, -220, 420, 420), fill=(*accent, 38))
    draw.ellipse((WIDTH - 300, HEIGHT - 420, WIDTH + 260, HEIGHT + 140), fill=(*accent, 30))
    draw.ellipse((WIDTH - 230, 120, WIDTH - 60, 290), fill=(255, 255, 255, 22))
    overlay = overlay.filter(ImageFilter.GaussianBlur(6))
    image = Image.alpha_composite(image.convert("RGBA"), overlay)
    frame = ImageDraw.Draw(image)
    frame.rounded_rectangle(
        (36, 36, WIDTH - 36, HEIGHT - 36), radius=42, outline=(*accent, 150), width=3
    )
    return image


@cache
def _background_png(theme: ThemeId) -> bytes:
    # The background depends on the theme only: draw it once per process.
    buffer = io.BytesIO()
    _background(theme).save(buffer, format="PNG")
    return buffer.getvalue()


def render_card(
    text: str,
    *,
    theme: ThemeId,
    language: Language,
    footer: str,
    image_format: ImageFormat = "JPEG",
) -> bytes:
    """The card as image bytes. Text that is too long is still drawn, at the smallest size."""
    image = Image.open(io.BytesIO(_background_png(theme))).convert("RGBA")
    draw = ImageDraw.Draw(image)
    accent = THEMES[theme].accent
    center = WIDTH // 2

    brand = _font(40, bold=True)
    mark = " ".join(wordmark(language))
    draw.text((center, 118), mark, font=brand, fill=(*accent, 255), anchor="mm")
    draw.line((center - 60, 160, center + 60, 160), fill=(*accent, 200), width=3)

    layout = layout_text(text)
    if layout is None:
        size = MIN_FONT
        lines = tuple(_wrap_hard(text, _font(size), WIDTH - 2 * MARGIN))
        layout = Layout(size, lines, round(len(lines) * size * LINE_SPACING))
    font = _font(layout.size)
    line_height = layout.size * LINE_SPACING
    y = TEXT_TOP + (TEXT_BOTTOM - TEXT_TOP - layout.height) / 2 + line_height / 2
    for line in layout.lines:
        draw.text((center, y), line, font=font, fill=(255, 255, 255, 255), anchor="mm")
        y += line_height

    small = _font(28)
    draw.line((center - 140, HEIGHT - 150, center + 140, HEIGHT - 150), fill=(*accent, 120))
    draw.text((center, HEIGHT - 105), footer, font=small, fill=(*accent, 235), anchor="mm")

    buffer = io.BytesIO()
    rgb = image.convert("RGB")
    if image_format == "JPEG":
        rgb.save(buffer, format="JPEG", quality=88, optimize=True)
    else:
        rgb.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _wrap_hard(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for char in " ".join(text.split()):
        if font.getlength(current + char) > width:
            lines.append(current)
            current = char.lstrip()
        else:
            current += char
    lines.append(current)
    return lines


async def render_card_async(
    text: str,
    *,
    theme: ThemeId,
    language: Language,
    footer: str,
    image_format: ImageFormat = "JPEG",
) -> bytes:
    """:func:`render_card` in a worker thread."""
    return await asyncio.to_thread(
        render_card,
        text,
        theme=theme,
        language=language,
        footer=footer,
        image_format=image_format,
    )
