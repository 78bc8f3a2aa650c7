"""Card images: format, fitting, fonts with Cyrillic and Czech diacritics, no loop blocking."""

from __future__ import annotations

import io

from PIL import Image, ImageFont

from vechnost_bot.game import render


def test_renders_jpeg_and_png() -> None:
    """The card is a portrait image in the requested format."""
    jpeg = render.render_card("Как прошёл твой день?", theme="couples", language="ru",
                              footer="Для пар · Уровень 1")  # fmt: skip
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    assert image.size == (render.WIDTH, render.HEIGHT)
    png = render.render_card("Hi", theme="sex", language="en", footer="Sex · Tasks",
                             image_format="PNG")  # fmt: skip
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_fits_and_layout() -> None:
    """Short and 200-character texts fit; an unbreakable or huge text does not."""
    assert render.fits("What makes you laugh?", "en")
    assert render.fits(("Příliš žluťoučký kůň úpěl ďábelské ódy " * 6)[:200], "cs")
    assert not render.fits("x" * 120, "en")
    assert not render.fits("слово " * 200, "ru")
    assert not render.fits("   ", "ru")
    short = render.layout_text("Hi")
    long = render.layout_text("word " * 35)
    assert short is not None
    assert long is not None
    assert short.size > long.size


def test_too_long_text_still_renders() -> None:
    """A text that does not fit is drawn at the smallest size instead of failing."""
    data = render.render_card("y" * 400, theme="acquaintance", language="cs", footer="x")
    assert data.startswith(b"\xff\xd8")


def test_wordmark_per_language() -> None:
    """ВЕЧНОСТЬ in Russian, VECHNOST in English and Czech."""
    assert render.wordmark("ru") == "ВЕЧНОСТЬ"
    assert render.wordmark("en") == render.wordmark("cs") == "VECHNOST"


def test_font_covers_cyrillic_and_czech() -> None:
    """Every letter we need has a real glyph in the shipped font, and the licence ships too."""
    font = ImageFont.truetype(str(render.FONT_DIR / "DejaVuSans.ttf"), 40)
    notdef = bytes(font.getmask("\U000f0000"))  # a private-use char: the "missing" box

    def has_glyph(char: str) -> bool:
        return bytes(font.getmask(char)) != notdef

    letters = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    letters += "ÁČĎÉĚÍŇÓŘŠŤÚŮÝŽáčďéěíňóřšťúůýž«»—…"
    assert not has_glyph("中")
    assert [c for c in letters if not has_glyph(c)] == []
    assert (render.FONT_DIR / "DejaVuSans-Bold.ttf").exists()
    assert "Bitstream" in (render.FONT_DIR / "LICENSE-DejaVu.txt").read_text(encoding="utf-8")


async def test_async_render_runs_in_a_thread() -> None:
    """render_card_async gives the same bytes as the sync render."""
    args = {"theme": "provocation", "language": "en", "footer": "Provocation"}
    data = await render.render_card_async("Dare?", **args)  # type: ignore[arg-type]
    assert data == render.render_card("Dare?", **args)  # type: ignore[arg-type]
