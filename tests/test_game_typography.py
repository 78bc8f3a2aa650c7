"""Non-breaking spaces where a line must not break: one-letter words, dashes."""

from __future__ import annotations

import pytest

from vechnost_bot.game.typography import NBSP, bind_short_words
from vechnost_bot.storage.records import Language


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("ru", "Я и в доме с тобой", "Я_и_в_доме с_тобой"),
        ("ru", "А ты? И я. У нас к морю", "А_ты? И_я. У_нас к_морю"),
        ("ru", "«А ты» (и я)", "«А_ты» (и_я)"),
        ("ru", "Дом — это ты", "Дом_— это ты"),
        ("ru", "обо мне и", "обо мне и"),
        ("ru", "мы с тобой, а не они", "мы с_тобой, а_не они"),
        ("cs", "K tobě a k ní – i s ním", "K_tobě a_k_ní_– i_s_ním"),
        ("cs", "Z domu v Praze o tom u nás", "Z_domu v_Praze o_tom u_nás"),
        ("cs", "„A ty?“", "„A_ty?“"),
        ("en", "I saw a cat - yes", "I saw a cat_- yes"),
        ("en", "A dash – and more", "A dash_– and more"),
    ],
)  # fmt: skip
def test_binds_one_letter_words_and_dashes(language: Language, text: str, expected: str) -> None:
    """ru в и а к с у о я and cs k s v z o u a i (any case) bind to the next word; a dash
    between words binds to the word before it; English one-letter words are left alone."""
    assert bind_short_words(text, language) == expected.replace("_", NBSP)


def test_letters_inside_words_and_other_letters_stay() -> None:
    """Only whole one-letter words are bound: not word endings, not other single letters."""
    assert bind_short_words("дома и", "ru") == "дома и"
    assert bind_short_words("ты б знал", "ru") == "ты б знал"
    assert bind_short_words("Ano, máš", "cs") == "Ano, máš"
    assert bind_short_words("b c d", "cs") == "b c d"
    assert bind_short_words("e-mail - x", "en") == f"e-mail{NBSP}- x"
