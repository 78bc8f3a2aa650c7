"""Card images: format, fitting, typography in the layout, a legible footer measured from the
pixels, a look per level and per kind, fonts with Cyrillic and Czech, no loop blocking."""

from __future__ import annotations

import io
from typing import get_args

import pytest
from PIL import Image, ImageFont

from vechnost_bot.game import render
from vechnost_bot.game.content import KINDS, THEMES, Card, CardKind
from vechnost_bot.game.labels import HEAT_THEMES, heat_label, kind_label
from vechnost_bot.storage.records import ContentType, Language, ThemeId

_LETTER = {kind: letter for letter, kind in KINDS.items()}


def _card(
    text: str, *, theme: ThemeId = "couples", level: int = 1, kind: CardKind = "question"
) -> Card:
    content: ContentType | None = "tasks" if kind == "task" else "questions"
    if kind in {"opening", "closing"}:
        level, content = 0, None
    card_id = f"{THEMES[theme].prefix}{level}{_LETTER[kind]}01"
    return Card(card_id, theme, level, content, {"ru": text, "en": text, "cs": text})


def _png(card: Card, language: Language = "en", footer: str = "For Couples") -> Image.Image:
    data = render.render_card(card, language, footer=footer, image_format="PNG")
    return Image.open(io.BytesIO(data)).convert("RGB")


def _luminance(rgb: tuple[int, ...]) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(v) for v in rgb[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _contrast(a: float, b: float) -> float:
    light, dark = max(a, b), min(a, b)
    return (light + 0.05) / (dark + 0.05)


def test_renders_jpeg_and_png() -> None:
    """The card is a portrait image in the requested format."""
    card = _card("Как прошёл твой день?")
    jpeg = render.render_card(card, "ru", footer="Для пар · Уровень 1")
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    assert image.size == (render.WIDTH, render.HEIGHT)
    png = render.render_card(_card("Hi", theme="sex", kind="task"), "en", footer="Sex · Tasks",
                             image_format="PNG")  # fmt: skip
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_fits_and_layout() -> None:
    """Short and 200-character texts fit; an unbreakable or huge text does not."""
    assert render.fits("What makes you laugh?", "en")
    assert render.fits(("Příliš žluťoučký kůň úpěl ďábelské ódy " * 6)[:200], "cs")
    assert not render.fits("x" * 120, "en")
    assert not render.fits("слово " * 200, "ru")
    assert not render.fits("   ", "ru")
    short = render.layout_text("Hi", "en")
    long = render.layout_text("word " * 35, "en")
    assert short is not None
    assert long is not None
    assert short.size > long.size


def test_layout_binds_short_words_and_dashes() -> None:
    """A one-letter word never ends a line and a dash never starts one, even where a greedy
    wrap would put them there."""
    text = "Что бы ты хотел узнать обо мне и о моём детстве — и почему именно это сейчас"
    layout = render.layout_text(text, "ru")
    assert layout is not None
    assert len(layout.lines) > 2
    for line in layout.lines[:-1]:
        assert line.split()[-1] not in {"и", "о", "в"}, layout.lines
    assert all(not line.startswith("—") for line in layout.lines)
    assert any("\u00a0—" in line for line in layout.lines)


def test_lines_are_balanced_without_an_orphan() -> None:
    """Where a greedy wrap leaves one word alone on the last line, the layout does not: its
    lines are of even width and the last has company."""
    text = "Над какой твоей привычкой любят подшучивать друзья?"
    layout = render.layout_text(text, "ru")
    assert layout is not None
    font = render._font(layout.size)
    widths = [font.getlength(line) for line in layout.lines]
    assert len(layout.lines[-1].split()) > 1
    assert max(widths) - min(widths) < 0.35 * max(widths), layout.lines


def test_too_long_text_still_renders() -> None:
    """A text that does not fit is drawn at the smallest size instead of failing."""
    data = render.render_card(_card("y" * 400, theme="acquaintance"), "cs", footer="x")
    assert data.startswith(b"\xff\xd8")


def test_wordmark_per_language() -> None:
    """ВЕЧНОСТЬ in Russian, VECHNOST in English and Czech."""
    assert render.wordmark("ru") == "ВЕЧНОСТЬ"
    assert render.wordmark("en") == render.wordmark("cs") == "VECHNOST"


@pytest.mark.parametrize(
    ("theme", "level"),
    [("acquaintance", 1), ("acquaintance", 3), ("couples", 2), ("provocation", 1),
     ("sex", 1), ("sex", 2), ("couples", 0)],
)  # fmt: skip
def test_footer_is_legible_on_its_real_background(theme: ThemeId, level: int) -> None:
    """Measured from the rendered pixels: the footer text has at least 4.5:1 contrast against
    the brightest background pixel around it, and capitals at least 27 px high (9 pt when a
    phone shows the card 300 pt wide)."""
    kind: CardKind = "opening" if level == 0 else "question"
    image = _png(_card("Hello", theme=theme, level=level, kind=kind), footer="HELLO · LEVEL")
    left, top, right, bottom = render.FOOTER_BOX
    y = render.FOOTER_Y
    pixels = image.load()
    assert pixels is not None
    text_rows: set[int] = set()
    text_columns: list[int] = []
    text_lum: list[float] = []
    for row in range(y - 30, y + 31):
        for column in range(left, right):
            lum = _luminance(pixels[column, row])
            if lum > 0.6:
                text_rows.add(row)
                text_columns.append(column)
                text_lum.append(lum)
    assert text_lum, "no footer text found"
    ink = sorted(text_lum)[int(len(text_lum) * 0.9)]
    start, end = min(text_columns) + 20, max(text_columns) - 20
    ground = max(
        _luminance(pixels[column, row])
        for row in (y - 32, y - 31, y + 31, y + 32)
        for column in range(start, end)
    )
    assert _contrast(ink, ground) >= 4.5
    assert max(text_rows) - min(text_rows) + 1 >= 27
    assert top < y - 30
    assert bottom > y + 30


def _runs(image: Image.Image, row: int) -> int:
    """How many separate marks cross ``row`` (pixels far from the row's left background)."""
    pixels = image.load()
    assert pixels is not None
    ground = _luminance(pixels[120, row])
    runs, inside = 0, False
    for column in range(120, render.WIDTH - 120):
        mark = abs(_luminance(pixels[column, row]) - ground) > 0.08
        runs += mark and not inside
        inside = mark
    return runs


def test_each_level_looks_different() -> None:
    """One pip per level (flames in Sex), none on opening cards, and a shade per level."""
    images = {level: _png(_card("Hi", theme="acquaintance", level=level)) for level in (1, 2, 3)}
    pips_row = render.PIPS_Y
    assert [_runs(images[level], pips_row) for level in (1, 2, 3)] == [1, 2, 3]
    shades = [_luminance(images[level].getpixel((150, 1000))) for level in (1, 2, 3)]  # type: ignore[arg-type]
    assert shades[0] > shades[1] > shades[2]
    hot = _png(_card("Hi", theme="sex", level=2, kind="task"))
    mild = _png(_card("Hi", theme="sex", level=1, kind="task"))
    assert _runs(hot, pips_row + 10) == 2
    assert _runs(mild, pips_row + 10) == 1
    assert mild.getpixel((150, 1000)) != hot.getpixel((150, 1000))
    assert _runs(_png(_card("Hi", kind="opening")), pips_row) == 0


def test_each_kind_has_its_own_label_colour_and_legible_label() -> None:
    """Questions, tasks, wildcards, guesses, opening and closing cards carry pills of six
    different colours, and the label on each has at least 4.5:1 contrast (from the pixels)."""
    fills: dict[CardKind, tuple[int, ...]] = {}
    for kind in get_args(CardKind):
        image = _png(_card("Hi", theme="sex" if kind == "task" else "couples", kind=kind))
        fill = image.getpixel((render.WIDTH // 2, render.LABEL_Y + 18))
        assert isinstance(fill, tuple)
        fills[kind] = fill
        row = [image.getpixel((x, render.LABEL_Y)) for x in range(300, 600)]
        ink = min(_luminance(p) for p in row)  # type: ignore[arg-type]
        assert _contrast(ink, _luminance(fill)) >= 4.5, kind
    colours = list(fills.values())
    for index, first in enumerate(colours):
        for second in colours[index + 1 :]:
            assert sum(abs(a - b) for a, b in zip(first, second, strict=True)) > 40, fills


def test_labels_in_every_language() -> None:
    """Every kind has a label in every language; Sex levels are named by heat, others not."""
    for language in get_args(Language):
        labels = {kind_label(kind, language) for kind in get_args(CardKind)}
        assert len(labels) == len(get_args(CardKind))
    assert kind_label("wildcard", "ru") == "Джокер"
    assert [heat_label("sex", level, "en") for level in (1, 2, 3)] == ["Mild", "Hot", "Hot"]
    assert heat_label("sex", 2, "cs") == "Žhavě"
    assert heat_label("sex", 0, "ru") is None
    assert heat_label("couples", 2, "en") is None
    assert frozenset({"sex"}) == HEAT_THEMES


def test_font_covers_cyrillic_and_czech() -> None:
    """Every letter we need has a real glyph in the shipped font, and the licence ships too."""
    font = ImageFont.truetype(str(render.FONT_DIR / "DejaVuSans.ttf"), 40)
    notdef = bytes(font.getmask("\U000f0000"))  # a private-use char: the "missing" box

    def has_glyph(char: str) -> bool:
        return bytes(font.getmask(char)) != notdef

    letters = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    letters += "ÁČĎÉĚÍŇÓŘŠŤÚŮÝŽáčďéěíňóřšťúůýž«»—…–„“”’·"
    assert not has_glyph("中")
    assert [c for c in letters if not has_glyph(c)] == []
    assert font.getlength("a\u00a0b") == font.getlength("a b")
    assert (render.FONT_DIR / "DejaVuSans-Bold.ttf").exists()
    assert "Bitstream" in (render.FONT_DIR / "LICENSE-DejaVu.txt").read_text(encoding="utf-8")


async def test_async_render_runs_in_a_thread() -> None:
    """render_card_async gives the same bytes as the sync render."""
    card = _card("Dare?", theme="provocation")
    data = await render.render_card_async(card, "en", footer="Provocation")
    assert data == render.render_card(card, "en", footer="Provocation")
