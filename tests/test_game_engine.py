"""The rules: navigation, the 18+ gate, drawing without repeats, reshuffle, turns, swap,
pacing, opening cards, favourites, rooms."""

from __future__ import annotations

import random

import pytest

from tests.support.decks import write_decks
from vechnost_bot.game import engine
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.storage.game_records import Player, Seat, Table
from vechnost_bot.storage.records import Session


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Fixture decks with 6 cards each."""
    return load_library(write_decks(tmp_path_factory.mktemp("decks"), per_deck=6))


def _session() -> Session:
    return Session(chat_id=1, language="en")


def test_steps_follow_the_choices(library: Library) -> None:
    """theme → level → deck; single levels and content types are chosen at once."""
    session = Session(chat_id=1)
    assert engine.step(session, library) == "theme"
    session = engine.choose_theme(session, library, "acquaintance")
    assert engine.step(session, library) == "level"
    session = engine.choose_level(session, library, 2)
    assert engine.step(session, library) == "deck"
    assert session.content == "questions"
    assert engine.deeper_level(session, library) == 3
    session = engine.choose_theme(session, library, "provocation")
    assert (session.level, session.content, engine.step(session, library)) == (
        1, "questions", "deck",
    )  # fmt: skip
    assert engine.deeper_level(session, library) is None


def test_adult_theme_needs_everyones_confirmation(library: Library) -> None:
    """Sex opens only when the person asking and every seated player confirmed 18+."""
    session = _session()
    assert engine.needs_adult_confirmation("sex", confirmed=False)
    assert not engine.needs_adult_confirmation("couples", confirmed=False)
    with pytest.raises(PermissionError):
        engine.choose_theme(session, library, "sex")
    anna, tom = Player(user_id=1), Player(user_id=2)
    table = Table(game_id=-5, player_names=["Anna", "Tom"], player_ids=[1, 2])
    assert not engine.adult_ready(table, {}, 1)
    engine.confirm_adult(anna)
    assert not engine.adult_ready(table, {1: anna, 2: tom}, 1)
    engine.confirm_adult(tom)
    assert engine.adult_ready(table, {1: anna, 2: tom}, 1)
    assert engine.adult_ready(Table(game_id=7), {1: anna}, 1)  # one phone: the one who asks
    assert not engine.adult_ready(Table(game_id=7), {}, None)
    session = engine.choose_theme(session, library, "sex", adult_ok=True)
    assert engine.step(session, library) == "content"
    session = engine.choose_content(session, "tasks")
    assert engine.step(session, library) == "deck"


def test_invalid_choices_raise(library: Library) -> None:
    """Levels and content types a theme does not have are refused."""
    session = engine.choose_theme(_session(), library, "couples")
    with pytest.raises(ValueError, match="level 4"):
        engine.choose_level(session, library, 4)
    with pytest.raises(ValueError, match="tasks"):
        engine.choose_content(session, "tasks")
    session = engine.choose_theme(_session(), library, "sex", adult_ok=True)
    session.level = None
    with pytest.raises(ValueError, match="level first"):
        engine.choose_content(session, "questions")
    with pytest.raises(ValueError, match="level 1"):
        engine.choose_level(_session(), library, 1)


def test_back_goes_one_meaningful_step(library: Library) -> None:
    """Back skips the menus that had one choice only."""
    session = engine.choose_level(engine.choose_theme(_session(), library, "couples"), library, 3)
    session = engine.go_back(session, library)
    assert (session.theme, session.level) == ("couples", None)
    session = engine.go_back(session, library)
    assert session.theme is None
    session = engine.go_back(session, library)
    assert session.theme is None
    session = engine.choose_theme(_session(), library, "provocation")
    assert engine.go_back(session, library).theme is None
    session = engine.choose_theme(_session(), library, "sex", adult_ok=True)
    session = engine.choose_content(session, "questions")
    session = engine.go_back(session, library)
    assert (session.theme, session.content) == ("sex", None)
    assert engine.go_back(session, library).theme is None
    assert engine.current_deck(session, library) is None


def test_draw_never_repeats_until_exhausted(library: Library) -> None:
    """Every card of a deck comes once; then the deck says exhausted; reshuffle starts over."""
    session = engine.choose_level(
        engine.choose_theme(_session(), library, "acquaintance"), library, 1
    )
    rng = random.Random(7)
    seen: list[str] = []
    for number in range(1, 7):
        session, outcome = engine.draw(session, library, rng)
        assert outcome.card is not None
        assert (outcome.drawn, outcome.total) == (number, 6)
        seen.append(outcome.card.id)
    assert len(set(seen)) == 6
    session, outcome = engine.draw(session, library, rng)
    assert outcome.exhausted
    assert (outcome.drawn, outcome.total) == (6, 6)
    session = engine.reshuffle(session, "acquaintance", 1, "questions")
    session, outcome = engine.draw(session, library, rng)
    assert outcome.card is not None
    assert outcome.drawn == 1


def test_language_switch_keeps_progress(library: Library) -> None:
    """Drawn ids are stable across languages, so progress survives a language switch."""
    session = engine.choose_level(engine.choose_theme(_session(), library, "couples"), library, 2)
    for _ in range(3):
        session, _outcome = engine.draw(session, library)
    deck = engine.current_deck(session, library)
    assert deck is not None
    assert engine.progress(session, deck) == (3, 6)
    session, outcome = engine.draw(session, library)
    assert outcome.card is not None
    assert outcome.card.text("cs").startswith("Otázka")
    assert outcome.drawn == 4


def test_progress_ignores_removed_cards_and_reset_forgets_the_decks(library: Library) -> None:
    """Ids no longer in a deck do not count; reset forgets the decks."""
    session = engine.choose_level(engine.choose_theme(_session(), library, "couples"), library, 1)
    session.drawn = {"couples:1:questions": ["gone", "cpl1q01"]}
    deck = engine.current_deck(session, library)
    assert deck is not None
    assert engine.progress(session, deck) == (1, 6)
    session = engine.reset(session)
    assert (session.theme, session.drawn, session.language) == (None, {}, "en")
    with pytest.raises(ValueError, match="choose a theme"):
        engine.draw(session, library)


def test_undrawn_card_comes_next_and_reshuffle_does_not_repeat(library: Library) -> None:
    """A card put back after a failed send is the next one drawn, without repeats; after a
    reshuffle the deck's last card is not favoured."""
    rng = random.Random(7)
    session = engine.choose_theme(_session(), library, "provocation")
    session, first = engine.draw(session, library, rng)
    session, second = engine.draw(session, library, rng)
    assert first.card is not None
    assert second.card is not None
    session = engine.undraw(session, "provocation:1:questions", second.card.id)
    assert session.drawn["provocation:1:questions"] == [first.card.id]
    assert engine.undraw(session, "provocation:1:questions", "prv1q99").drawn == session.drawn
    session, again = engine.draw(session, library, rng)
    assert again.card == second.card
    assert again.drawn == 2
    for _ in range(3):
        session, outcome = engine.draw(session, library, rng)
    ids = session.drawn["provocation:1:questions"]
    assert len(ids) == len(set(ids)) == outcome.drawn == 5
    session = engine.reshuffle(session, "provocation", 1, "questions")
    assert session.last_card is None
    firsts = {
        engine.draw(session.model_copy(deep=True), library, random.Random(n))[0].last_card
        for n in range(30)
    }
    assert len(firsts) > 1


def _two(table: Table | None = None) -> Table:
    table = table or Table(game_id=-9)
    for user_id, name in ((1, "Anna"), (2, "Tom")):
        table = engine.seat(table, user_id, name)
    return table


def test_names_are_read_from_one_message() -> None:
    """ "Anna and Tom", "Аня и Тёма", "Anna a Tom", "Anna, Tom" give two names; anything
    else (one name, three, the same twice, a sentence) gives None."""
    assert engine.parse_names("Anna and Tom") == ("Anna", "Tom")
    assert engine.parse_names("  Аня и Тёма ") == ("Аня", "Тёма")
    assert engine.parse_names("Anna a Tom") == ("Anna", "Tom")
    assert engine.parse_names("Mary Jane, Tom") == ("Mary Jane", "Tom")
    assert engine.parse_names("Anna & Tom!") == ("Anna", "Tom")
    for text in ("Anna", "Anna, Tom, Eva", "Tom and tom", "hello there",
                 "I think we should play the second level now and then go"):  # fmt: skip
        assert engine.parse_names(text) is None, text


def test_turns_alternate_and_bind_drawing_to_people(library: Library) -> None:
    """Each deck card names who asks and who answers, alternating; with people seated only
    the next asker may draw; opening cards take no turn; a third member gets no seat."""
    table = _two()
    table = engine.seat(table, 3, "Eva")
    assert [s.name for s in table.seats()] == ["Anna", "Tom"]
    deck = library.deck("couples", 1, "questions")
    assert deck is not None
    assert engine.can_draw(table, 1)
    assert not engine.can_draw(table, 2)
    table, first = engine.record_deal(table, deck.cards[0], now=100.0)
    assert first.roles == ("Anna", "Tom")
    assert engine.drawer_of_current(table) == Seat("Anna", 1)
    assert engine.can_draw(table, 2)
    assert not engine.can_draw(table, 1)
    table, second = engine.record_deal(table, deck.cards[1], now=160.0)
    assert second.roles == ("Tom", "Anna")
    table = engine.record_opening(table, deck.cards[2], now=170.0)
    assert engine.roles(table) == ("Anna", "Tom")  # the opening took no turn
    assert engine.previous_card(table, 1) == deck.cards[0].id
    assert engine.previous_card(table, 2) is None
    one_phone = engine.set_names(Table(game_id=5), ("Anna", "Tom"))
    assert engine.next_drawer(one_phone) is None
    assert engine.can_draw(one_phone, 12345)


def test_pacing_offers_to_go_deeper_once_per_level(library: Library) -> None:
    """After ``pace`` cards at a level the deal says "offer deeper", once; choosing a level
    starts the count again; undoing a deal takes the offer back too."""
    deck = library.deck("acquaintance", 1, "questions")
    assert deck is not None
    table = Table(game_id=1)
    offers = []
    for card in deck.cards:
        table, info = engine.record_deal(table, card, now=0.0, pace=3)
        offers.append(info.offer_deeper)
    assert offers == [False, False, True, False, False, False]
    table = engine.start_level(table)
    table, info = engine.record_deal(table, deck.cards[0], now=0.0, pace=1)
    assert info.offer_deeper
    table = engine.undo_deal(table, deck.cards[0].id, info)
    assert (table.paced, table.pace_offered, table.turn) == (0, False, 6)


def test_swap_returns_the_card_to_the_deck(library: Library) -> None:
    """A swapped card is not used up: another takes its place, the count stays, and the
    swapped one can come again; with one card left the swap keeps it."""
    rng = random.Random(3)
    session = engine.choose_theme(_session(), library, "provocation")
    session, first = engine.draw(session, library, rng)
    assert first.card is not None
    session, swapped = engine.swap(session, library, first.card.id, rng)
    assert swapped.card is not None
    assert swapped.card.id != first.card.id
    assert swapped.drawn == 1
    drawn = session.drawn["provocation:1:questions"]
    assert drawn == [swapped.card.id]
    seen = {swapped.card.id}
    for _ in range(5):
        session, outcome = engine.draw(session, library, rng)
        if outcome.card is not None:
            seen.add(outcome.card.id)
    assert first.card.id in seen  # it came back later
    last = session.last_card
    assert last is not None
    session, kept = engine.swap(session, library, last, rng)
    assert kept.card is not None
    assert kept.card.id == last
    with pytest.raises(ValueError, match="not on the table"):
        engine.swap(session, library, "acq1q01", rng)


def test_favourites_in_save_order_set_once() -> None:
    """Save, unsave and save again; the list is in save order (the storage dates each add
    and remove, so a merge keeps the newest of each); applied twice, a save or an unsave
    is the same as once (a redelivered tap)."""
    player = Player(user_id=1)
    player = engine.set_favourite(player, "acq1q02", saved=True)
    player = engine.set_favourite(player, "cpl1q01", saved=True)
    player = engine.set_favourite(player, "acq1q02", saved=True)
    assert player.favourites == ["acq1q02", "cpl1q01"]
    player = engine.set_favourite(player, "acq1q02", saved=False)
    player = engine.set_favourite(player, "acq1q02", saved=False)
    assert player.favourites == ["cpl1q01"]
    player = engine.set_favourite(player, "acq1q02", saved=True)
    assert player.favourites == ["cpl1q01", "acq1q02"]


def test_shown_deal_reads_back_what_record_deal_said(library: Library) -> None:
    """Roles, the pace offer and the pace count of the card on the table, read from the
    table record_deal wrote, are what record_deal returned, card after card (so a card
    shown again looks as it did)."""
    deck = library.deck("acquaintance", 1, "questions")
    assert deck is not None
    table = engine.start_level(engine.set_names(Table(game_id=1), ("Anna", "Tom")))
    offers = 0
    for card in deck.cards[:6]:
        table, info = engine.record_deal(table, card, now=1000.0, pace=3)
        assert engine.shown_deal(table, pace=3) == info
        offers += info.offer_deeper
    assert offers == 1


def test_mark_swapped_and_note_update_apply_once(library: Library) -> None:
    """A swap chosen from an earlier state puts the old card back and the new one in, the
    same when applied twice; a session remembers the last few update ids, each once."""
    session = Session(chat_id=1, drawn={"d": ["x", "old"]}, last_card="old")
    for _ in range(2):
        session = engine.mark_swapped(session, "d", "old", "new")
        assert session.drawn == {"d": ["x", "new"]}
        assert session.last_card == "new"
    for update_id in [5, 6, 5, *range(10, 20)]:
        session = engine.note_update(session, update_id)
    assert session.recent_updates == list(range(12, 20))
    assert engine.is_noted(session, 19)
    assert not engine.is_noted(session, 5)


def test_end_game_sums_up_and_starts_afresh(library: Library) -> None:
    """The summary counts deck cards and minutes together; afterwards the counters, the
    history and the opening start over; a full reset also forgets the names."""
    deck = library.deck("acquaintance", 1, "questions")
    assert deck is not None
    table = engine.set_names(Table(game_id=1), ("Anna", "Tom"))
    table = engine.record_opening(table, deck.cards[5], now=1000.0)
    for card in deck.cards[:3]:
        table, _info = engine.record_deal(table, card, now=1100.0)
    table.saved_in_game = 2
    table, summary = engine.end_game(table, now=1000.0 + 25 * 60)
    assert summary == engine.Summary(cards=3, minutes=25, saved=2)
    assert (table.shared, table.history, table.opening_dealt, table.started_at) == (0, [], [], None)
    assert len(table.seats()) == 2
    assert engine.reset_table(table).seats() == []


def test_rooms_hold_two_and_remember_who_left() -> None:
    """Two partners join; a third is refused; one leaves (the room keeps its state and
    seats the other), and comes back with the same link, seated after the one who stayed."""
    table = Table(game_id=-(10**15) - 7, room=True)
    table, result = engine.join_room(table, 1, 101, "Anna")
    assert result == "joined"
    table, result = engine.join_room(table, 1, 101, "Anna")
    assert result == "already"
    table, result = engine.join_room(table, 2, 202, "Tom")
    assert result == "joined"
    table, result = engine.join_room(table, 3, 303, "Eva")
    assert result == "full"
    assert [s.user_id for s in table.seats()] == [1, 2]
    table.card_messages = {"101": 5, "202": 6}
    table = engine.leave_room(table, 1)
    assert [s.user_id for s in table.seats()] == [2]
    assert table.card_messages == {"202": 6}
    assert table.members == ["2"]
    table, result = engine.join_room(table, 1, 101, "Anna")
    assert result == "back"
    assert [s.user_id for s in table.seats()] == [2, 1]


def test_the_library_says_levels_openings_and_closings(library: Library) -> None:
    """The engine asks the library (the deck files) for levels, openings and closings."""
    card = library.deck("acquaintance", 1, "questions")
    assert card is not None
    assert card.cards[0].kind == "question"
    assert engine.opening_cards(library, "acquaintance") == ()
    assert engine.closing_card(library, "acquaintance") is None
    assert engine.theme_levels(library, "couples") == (1, 2, 3)
