"""Card images, drawn with Pillow.

A theme-coloured gradient, shaded by level, with a few soft shapes; the wordmark
and a label naming the card's kind (and, in a heat theme, its heat) at the top;
the card text in the middle, wrapped in balanced lines that keep one-letter words
with the next word and never start a line with a dash; pips for the level and a
footer on a dark pill, legible on a phone. Rendering is CPU work: the bot calls
:func:`render_card_async`, which runs it in a thread so the event loop keeps
serving other players.
"""

from __future__ import annotations

import asyncio
import io
import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Final, Literal

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vechnost_bot.game.content import THEMES, Card, CardKind
from vechnost_bot.game.labels import HEAT_THEMES, heat_label, kind_label
from vechnost_bot.game.typography import bind_short_words
from vechnost_bot.storage.records import Language, ThemeId

__all__ = [
    "FONT_DIR",
    "FOOTER_BOX",
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
RENDER_VERSION: Final = 3
"""Part of every cache key of rendered images and file ids; bump when the look changes."""

ImageFormat = Literal["JPEG", "PNG"]
RGB = tuple[int, int, int]

WIDTH: Final = 900
HEIGHT: Final = 1125
MARGIN: Final = 90
TEXT_TOP: Final = 250
TEXT_BOTTOM: Final = HEIGHT - 250
MAX_FONT: Final = 64
MIN_FONT: Final = 34
LINE_SPACING: Final = 1.28
FOOTER_FONT: Final = 40  # about 13 pt when a phone shows the card 300 pt wide
FOOTER_Y: Final = HEIGHT - 118
FOOTER_BOX: Final = (MARGIN - 30, FOOTER_Y - 42, WIDTH - MARGIN + 30, FOOTER_Y + 42)
"""Where the footer pill can be: (left, top, right, bottom) in pixels."""
LABEL_Y: Final = 178
PIPS_Y: Final = HEIGHT - 200

# A pill per kind, in a colour of its own; its label is dark on it.
_KIND_FILL: Final[dict[CardKind, RGB | None]] = {
    "question": None,  # the theme's accent
    "task": (150, 226, 196),
    "wildcard": (255, 210, 92),
    "guess": (196, 178, 255),
    "opening": (246, 246, 246),
    "closing": (178, 220, 255),
}
_LABEL_INK: Final = (28, 18, 30)
_FOOTER_INK: Final = (255, 255, 255)
_FOOTER_PILL: Final = (0, 0, 0, 150)


@cache
def _font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONT_DIR / name), size)


def wordmark(language: Language) -> str:
    """The brand as written on the card: ВЕЧНОСТЬ in Russian, VECHNOST otherwise."""
    return "ВЕЧНОСТЬ" if language == "ru" else "VECHNOST"


@dataclass(frozen=True, slots=True)
class Layout:
    """The text of a card broken into lines at one font size.

    The lines keep the non-breaking spaces of :func:`bind_short_words`: a line
    break is only ever at an ordinary space.
    """

    size: int
    lines: tuple[str, ...]
    height: int


# Widths are measured once per word at this size and scaled to the others; the
# lines chosen are measured again at their real size before they are accepted.
_REFERENCE_SIZE: Final = 100
_BOX_WIDTH: Final = WIDTH - 2 * MARGIN
_BOX_HEIGHT: Final = TEXT_BOTTOM - TEXT_TOP


def _greedy_lines(widths: list[float], space: float, box: float) -> int | None:
    """How many lines a greedy wrap needs (the fewest there can be); None if a word is wider."""
    lines, current = 1, -space
    for width in widths:
        if width > box:
            return None
        if current + space + width <= box:
            current += space + width
        else:
            lines += 1
            current = width
    return lines


def _balanced(
    words: list[str], widths: list[float], space: float, box: float, count: int
) -> list[str]:
    """``words`` in ``count`` lines of even width (the text is centred).

    Minimises the sum of squared slack of every line, the last included, so the
    lines come out alike; a last line of one word costs extra where the words
    allow another break, and a line that ends a clause (after , . : ; ? !) costs less.
    """
    n = len(words)
    prefix = [0.0]
    for width in widths:
        prefix.append(prefix[-1] + width)

    def line_width(start: int, end: int) -> float:
        return prefix[end] - prefix[start] + space * (end - start - 1)

    inf = math.inf
    # best[j][i]: the cheapest way to set the first i words in j lines.
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    back = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for j in range(1, count + 1):
        for end in range(j, n + 1):
            for start in range(end - 1, j - 2, -1):
                width = line_width(start, end)
                if width > box:
                    break
                if best[j - 1][start] == inf:
                    continue
                cost = (box - width) ** 2
                if j == count and end - start == 1 and n > count:
                    cost += 2 * box * box  # an orphan: one word alone on the last line
                if end < n and words[end - 1][-1] in ",.:;?!":
                    cost -= 0.08 * box * box
                total = best[j - 1][start] + cost
                if total < best[j][end]:
                    best[j][end], back[j][end] = total, start
    lines: list[str] = []
    end = n
    for j in range(count, 0, -1):
        start = back[j][end]
        lines.append(" ".join(words[start:end]))
        end = start
    return lines[::-1]


# How much smaller than the largest fitting size the text may get to avoid an orphan.
_ORPHAN_SHRINK: Final = 0.85


def _orphan(lines: list[str]) -> bool:
    """True when the last of several lines is a single word."""
    return len(lines) > 1 and len(lines[-1].split()) == 1


@lru_cache(maxsize=8192)
def layout_text(text: str, language: Language) -> Layout | None:
    """The largest font size at which ``text`` fits the text box, in balanced lines.

    When the last line would be a single word, a slightly smaller size (down to 85 %)
    that gives it company is taken instead. None when the text fits at no readable
    size (or is blank).
    """
    # A unit is what may not be broken: words joined by non-breaking spaces.
    units = bind_short_words(" ".join(text.split()), language).split(" ")
    if units == [""]:
        return None
    reference = _font(_REFERENCE_SIZE)
    unit_widths = [reference.getlength(unit) for unit in units]
    space = reference.getlength(" ")
    first: Layout | None = None
    for size in range(MAX_FONT, MIN_FONT - 1, -2):
        if first is not None and size < first.size * _ORPHAN_SHRINK:
            break
        scale = size / _REFERENCE_SIZE
        box = _BOX_WIDTH / scale * 0.98  # room for hinting, checked below
        count = _greedy_lines(unit_widths, space, box)
        if count is None:
            continue
        height = round(count * size * LINE_SPACING)
        if height > _BOX_HEIGHT:
            continue
        lines = _balanced(units, unit_widths, space, box, count)
        font = _font(size)
        if any(font.getlength(line) > _BOX_WIDTH for line in lines):
            continue
        if not _orphan(lines):
            return Layout(size, tuple(lines), height)
        first = first or Layout(size, tuple(lines), height)
    return first


def fits(text: str, language: Language) -> bool:
    """True when ``text`` fits on a card in ``language`` at a readable size."""
    return layout_text(text, language) is not None


def _shade(color: RGB, level: int, *, heat: bool) -> RGB:
    """A level's shade of a theme colour: deeper levels darker, hotter levels redder."""
    red, green, blue = color
    steps = max(level - 1, 0)
    if heat:
        return (min(255, round(red * (1 + 0.18 * steps))), round(green * 0.8**steps),
                round(blue * 0.8**steps))  # fmt: skip
    factor = 0.84**steps
    return (round(red * factor), round(green * factor), round(blue * factor))


def _background(theme: ThemeId, level: int) -> Image.Image:
    info = THEMES[theme]
    heat = theme in HEAT_THEMES
    top, bottom = (_shade(color, level, heat=heat) for color in info.colors)
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
def _background_image(theme: ThemeId, level: int) -> Image.Image:
    # The background depends on the theme and level only: draw it once per process;
    # every render draws on a copy.
    return _background(theme, level).convert("RGB")


def _spaced(text: str) -> str:
    """Letter-spaced capitals, for the small labels (words stay apart by three spaces)."""
    return "   ".join(" ".join(word) for word in text.upper().split())


def _kind_colour(card: Card) -> RGB:
    return _KIND_FILL[card.kind] or THEMES[card.theme].accent


def _draw_frame(draw: ImageDraw.ImageDraw, card: Card) -> None:
    """The card's edge: the theme's accent on questions, the kind's colour on the others."""
    if _KIND_FILL[card.kind] is None:
        return  # the background's own frame
    draw.rounded_rectangle((36, 36, WIDTH - 36, HEIGHT - 36), radius=42,
                           outline=(*_kind_colour(card), 255), width=5)  # fmt: skip


def _draw_label(draw: ImageDraw.ImageDraw, card: Card, language: Language) -> None:
    """The kind pill under the wordmark: ``QUESTION``, ``ЗАДАНИЕ · ГОРЯЧО``."""
    words = [kind_label(card.kind, language)]
    heat = heat_label(card.theme, card.level, language)
    if heat is not None:
        words.append(heat)
    text = "  ·  ".join(_spaced(word) for word in words)
    font = _font(30, bold=True)
    half = min(font.getlength(text) / 2 + 28, WIDTH / 2 - 60)
    center = WIDTH / 2
    fill = _kind_colour(card)
    draw.rounded_rectangle((center - half, LABEL_Y - 27, center + half, LABEL_Y + 27),
                           radius=27, fill=(*fill, 255))  # fmt: skip
    draw.text((center, LABEL_Y), text, font=font, fill=(*_LABEL_INK, 255), anchor="mm")


def _draw_pips(draw: ImageDraw.ImageDraw, card: Card) -> None:
    """One pip per level; flames rather than dots in a heat theme. None at level 0."""
    if card.level < 1:
        return
    accent = THEMES[card.theme].accent
    heat = card.theme in HEAT_THEMES
    gap = 48
    left = WIDTH / 2 - gap * (card.level - 1) / 2
    for index in range(card.level):
        x = left + index * gap
        if heat:
            # A flame: a round base with a point on top.
            color = (255, 170, 90, 255) if card.level == 1 else (255, 96, 72, 255)
            draw.ellipse((x - 15, PIPS_Y - 6, x + 15, PIPS_Y + 24), fill=color)
            draw.polygon([(x - 15, PIPS_Y + 7), (x, PIPS_Y - 30), (x + 15, PIPS_Y + 7)], fill=color)
            core = (255, 224, 140, 255)  # the flame's bright heart
            draw.ellipse((x - 7, PIPS_Y + 6, x + 7, PIPS_Y + 20), fill=core)
            draw.polygon([(x - 7, PIPS_Y + 12), (x, PIPS_Y - 6), (x + 7, PIPS_Y + 12)], fill=core)
        else:
            draw.ellipse((x - 14, PIPS_Y - 14, x + 14, PIPS_Y + 14), fill=(*accent, 255))


def _draw_footer(draw: ImageDraw.ImageDraw, footer: str) -> None:
    """The footer in white on a dark pill: the same contrast on every theme and level."""
    if not footer.strip():
        return
    size = FOOTER_FONT
    left, top, right, bottom = FOOTER_BOX
    while size > 28 and _font(size, bold=True).getlength(footer) > right - left - 60:
        size -= 2
    font = _font(size, bold=True)
    half = min(font.getlength(footer) / 2 + 30, (right - left) / 2)
    center = WIDTH / 2
    draw.rounded_rectangle((center - half, top, center + half, bottom), radius=(bottom - top) // 2,
                           fill=_FOOTER_PILL)  # fmt: skip
    draw.text((center, FOOTER_Y), footer, font=font, fill=(*_FOOTER_INK, 255), anchor="mm")


def render_card(
    card: Card, language: Language, *, footer: str, image_format: ImageFormat = "JPEG"
) -> bytes:
    """The card as image bytes. Text that is too long is still drawn, at the smallest size."""
    image = _background_image(card.theme, card.level).copy()
    draw = ImageDraw.Draw(image, "RGBA")  # translucent fills blend onto the background
    accent = THEMES[card.theme].accent
    center = WIDTH // 2

    brand = _font(36, bold=True)
    draw.text((center, 100), " ".join(wordmark(language)), font=brand, fill=(*accent, 255),
              anchor="mm")  # fmt: skip
    _draw_frame(draw, card)
    _draw_label(draw, card, language)

    text = card.text(language)
    layout = layout_text(text, language)
    if layout is None:
        size = MIN_FONT
        lines = tuple(_wrap_hard(bind_short_words(text, language), _font(size), _BOX_WIDTH))
        layout = Layout(size, lines, round(len(lines) * size * LINE_SPACING))
    font = _font(layout.size)
    line_height = layout.size * LINE_SPACING
    y = TEXT_TOP + (_BOX_HEIGHT - layout.height) / 2 + line_height / 2
    for line in layout.lines:
        draw.text((center, y), line, font=font, fill=(255, 255, 255, 255), anchor="mm")
        y += line_height

    _draw_pips(draw, card)
    _draw_footer(draw, footer)

    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=88, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=False)
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
    card: Card, language: Language, *, footer: str, image_format: ImageFormat = "JPEG"
) -> bytes:
    """:func:`render_card` in a worker thread."""
    return await asyncio.to_thread(
        render_card, card, language, footer=footer, image_format=image_format
    )
