"""Records that merge: every policy's join is commutative, associative and idempotent,
and a merge never drops an acknowledged drawn card (property tests with hypothesis)."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Annotated, Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from vechnost_bot.storage.records import (
    HLC,
    LWW,
    AddRemoveSet,
    Counter,
    DatedFlag,
    Key,
    Record,
    Session,
    UserStats,
    adopt,
    dump_body,
    dump_value,
    is_live,
    load_value,
    merge,
    stamp,
    tombstone,
)

DECKS = ("a:1:questions", "b:1:tasks")
CARDS = tuple(f"c{n}" for n in range(8))


class _Wall:
    """A wall clock the test steps by hand (forwards and backwards)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


# An operation on one replica: (replica, op, argument)
_op = st.tuples(
    st.integers(0, 2),
    st.sampled_from(
        [
            "draw",
            "undraw",
            "reshuffle",
            "theme",
            "adult",
            "unadult",
            "reset",
            "note",
            "sync",
            "clock",
        ]
    ),
    st.integers(0, 7),
)


def _apply(replica: Session, op: str, arg: int, clock: HLC, others: list[Session]) -> Session:
    deck = DECKS[arg % 2]
    card = CARDS[arg]
    session = replica.model_copy(deep=True)
    if op in {"draw", "note"}:
        cards = session.drawn.get(deck, [])
        if card not in cards:
            session.drawn = {**session.drawn, deck: [*cards, card]}
        session.last_card = card
    if op == "note":  # a draw noting its update, as the handlers write it
        session.recent_updates = [*session.recent_updates, 100 + arg][-3:]
    if op == "undraw":
        if deck in session.drawn:
            session.drawn = {**session.drawn, deck: [c for c in session.drawn[deck] if c != card]}
    elif op == "reshuffle":
        session.drawn = {k: v for k, v in session.drawn.items() if k != deck}
    elif op == "theme":
        session.theme = ("acquaintance", "couples", "provocation", "sex")[arg % 4]
    elif op == "adult":
        session.adult_confirmed = True
    elif op == "unadult":
        session.adult_confirmed = False
    elif op == "reset":
        session.drawn = {}
        session.theme = None
    elif op == "sync":
        other = others[arg % len(others)]
        clock.observe(other.stamp)
        return merge(session, other)
    return stamp(session, clock)


def _replicas(ops: list[tuple[int, str, int]]) -> list[Session]:
    wall = _Wall()
    clocks = [HLC(node=f"n{i}", wall=wall) for i in range(3)]
    replicas = [Session(chat_id=1) for _ in range(3)]
    for index, op, arg in ops:
        if op == "clock":
            wall.now += (arg - 4) * 600.0  # steps of ten minutes, back as well as forth
            continue
        replicas[index] = _apply(replicas[index], op, arg, clocks[index], replicas)
        wall.now += 0.001
    return replicas


def _dump(record: Record) -> dict[str, Any]:
    return record.model_dump()


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=40))
def test_merge_is_commutative_associative_idempotent(ops: list[tuple[int, str, int]]) -> None:
    """Any three histories of one session join the same way in any order, and a join
    with itself changes nothing."""
    a, b, c = _replicas(ops)
    assert _dump(merge(a, b)) == _dump(merge(b, a))
    assert _dump(merge(merge(a, b), c)) == _dump(merge(a, merge(b, c)))
    assert _dump(merge(a, a)) == _dump(a)
    ab = merge(a, b)
    assert _dump(merge(ab, b)) == _dump(ab)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["draw", "sync", "clock"]),
                          st.integers(0, 7)), max_size=40))  # fmt: skip
def test_merge_never_drops_an_acknowledged_draw(ops: list[tuple[int, str, int]]) -> None:
    """Without undraws or reshuffles, every card any replica drew is in the merge of all,
    whatever the clocks did."""
    replicas = _replicas(ops)
    drawn = {(deck, card) for r in replicas for deck, cards in r.drawn.items() for card in cards}
    everything = merge(merge(replicas[0], replicas[1]), replicas[2])
    merged = {(deck, card) for deck, cards in everything.drawn.items() for card in cards}
    assert merged == drawn


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["note", "sync", "clock"]),
                          st.integers(0, 7)), max_size=30))  # fmt: skip
def test_noted_updates_merge_as_one_value(
    ops: list[tuple[int, str, int]],
) -> None:
    """The update ids a draw notes merge as one value, by the clock of its last writer
    (as ``last_card`` does): the merge of all replicas holds one replica's whole list,
    never a mix, and the draws noted are all kept."""
    replicas = _replicas(ops)
    everything = merge(merge(replicas[0], replicas[1]), replicas[2])
    assert everything.recent_updates in [r.recent_updates for r in replicas]
    drawn = {card for r in replicas for cards in r.drawn.values() for card in cards}
    assert {card for cards in everything.drawn.values() for card in cards} == drawn


def test_a_session_stored_before_noted_updates_loads() -> None:
    """A session written before ``recent_updates`` existed loads with none noted, and a
    later note wins the merge with it."""
    clock = HLC(node="a")
    stored = stamp(Session(chat_id=1, theme="couples", drawn={"d": ["x"]}, last_card="x"), clock)
    body = json.loads(dump_body(stored))
    body.pop("recent_updates")
    body["meta"].pop("recent_updates", None)
    old = load_value(Session, "1", b"1:4:0.0:" + json.dumps(body).encode())
    assert old.recent_updates == []
    assert old.drawn == {"d": ["x"]}
    noted = stamp(old.model_copy(update={"recent_updates": [7]}), clock)
    assert merge(old, noted).recent_updates == [7]
    assert merge(noted, old).recent_updates == [7]


def test_reshuffle_epoch_wins_and_same_epoch_unites() -> None:
    """A reshuffle (a deck's key removed) wins over draws of the older epoch; draws made
    in the same epoch by two replicas are united."""
    clock_a, clock_b = HLC(node="a"), HLC(node="b")
    base = stamp(Session(chat_id=1, drawn={"d": ["x"]}), clock_a)
    left = stamp(base.model_copy(update={"drawn": {"d": ["x", "y"]}}), clock_a)
    right = stamp(base.model_copy(update={"drawn": {"d": ["x", "z"]}}), clock_b)
    assert sorted(merge(left, right).drawn["d"]) == ["x", "y", "z"]
    shuffled = stamp(left.model_copy(update={"drawn": {}}), clock_a)
    again = stamp(shuffled.model_copy(update={"drawn": {"d": ["q"]}}), clock_a)
    assert merge(again, right).drawn == {"d": ["q"]}


def test_consent_stays_until_a_dated_reset() -> None:
    """A given 18+ consent survives a merge with an older copy; a later reset wins."""
    clock = HLC(node="a")
    old = stamp(Session(chat_id=1, language="ru"), clock)
    yes = stamp(old.model_copy(update={"adult_confirmed": True}), clock)
    assert merge(old, yes).adult_confirmed
    no = stamp(yes.model_copy(update={"adult_confirmed": False}), clock)
    assert not merge(yes, no).adult_confirmed


def test_clock_stepped_back_never_loses_to_the_past() -> None:
    """A write made after reading a record is dated after it, even with the wall clock an
    hour behind: the newer value wins the merge."""
    wall = _Wall()
    first = stamp(Session(chat_id=1, theme="couples"), HLC(node="a", wall=wall))
    wall.now -= 3600
    behind = HLC(node="b", wall=wall)
    behind.observe(first.stamp)
    second = stamp(first.model_copy(update={"theme": "sex"}), behind)
    assert second.stamp > first.stamp
    assert merge(first, second).theme == "sex"


def test_counters_count_each_increment_once() -> None:
    """Two processes' increments add up; replaying one's state (a journal adopted twice)
    adds nothing; a new lineage of one process keeps its earlier count."""
    a, b = HLC(node="a"), HLC(node="b")
    base = UserStats(user_id=7)
    mine = stamp(base.model_copy(update={"cards_drawn": 3}), a)
    theirs = stamp(base.model_copy(update={"cards_drawn": 2}), b)
    joined = merge(mine, theirs)
    assert joined.cards_drawn == 5
    assert merge(joined, mine).cards_drawn == 5
    a.new_lineage()
    later = stamp(base.model_copy(update={"cards_drawn": 1}), a)  # from a blank base
    assert merge(joined, later).cards_drawn == 6


def test_delete_forgets_older_events_only() -> None:
    """A delete hides the record; a write after it starts from nothing, and an older copy
    merged in later does not bring the deleted cards back."""
    clock = HLC(node="a")
    old = stamp(Session(chat_id=1, drawn={"d": ["x"]}, theme="couples"), clock)
    gone = tombstone(Session, "1", clock)
    assert not is_live(gone)
    assert not is_live(merge(old, gone))
    fresh = stamp(merge(old, gone).model_copy(update={"drawn": {"d": ["y"]}}), clock)
    assert is_live(fresh)
    combined = merge(old, fresh)
    assert combined.drawn == {"d": ["y"]}
    assert combined.theme is None


def test_legacy_values_adopt_the_same_way_everywhere() -> None:
    """A value stored before policies existed gets metadata that any real event beats."""
    legacy = adopt(Session(chat_id=1, theme="couples", drawn={"d": ["x", "y"]}, version=3))
    again = adopt(Session(chat_id=1, theme="couples", drawn={"d": ["x", "y"]}, version=3))
    assert _dump(legacy) == _dump(again)
    assert legacy.drawn == {"d": ["x", "y"]}
    newer = stamp(legacy.model_copy(update={"theme": "sex"}), HLC(node="z"))
    assert merge(legacy, newer).theme == "sex"
    assert is_live(legacy)
    stats = adopt(UserStats(user_id=1, cards_drawn=4))
    assert merge(stats, stats).cards_drawn == 4


def test_a_new_field_is_one_line_naming_its_policy() -> None:
    """A record kind declares each field with its policy; one without a policy is refused."""

    class Room(Record):
        KIND: ClassVar[str] = "room"
        room_id: Annotated[int, Key()]
        title: Annotated[str | None, LWW()] = None
        favourites: Annotated[list[str], AddRemoveSet()] = Field(default_factory=list)
        taps: Annotated[int, Counter()] = 0
        open: Annotated[bool, DatedFlag()] = False

    clock = HLC(node="a")
    room = stamp(Room(room_id=1, favourites=["x"], taps=2, title="t"), clock)
    reader = HLC(node="b")
    reader.observe(room.stamp)  # the storage observes every record it reads
    other = stamp(room.model_copy(update={"favourites": ["x", "y"], "taps": 3}), reader)
    joined = merge(room, other)
    assert (joined.favourites, joined.taps, joined.title) == (["x", "y"], 3, "t")
    assert Room.blank("5").room_id == 5

    with pytest.raises(TypeError, match="policy"):

        class Broken(Record):  # pyright: ignore[reportUnusedClass]
            KIND: ClassVar[str] = "broken"
            broken_id: Annotated[int, Key()]
            loose: int = 0


def test_negative_versions_are_refused() -> None:
    """Records are validated on the way in: a negative version is not a record."""
    with pytest.raises(ValueError, match="greater than or equal"):
        Session.model_validate({"chat_id": 1, "version": -1})


def _full_body(record: Record) -> bytes:
    """The body as pydantic dumps it (what a record read back unchanged must keep)."""
    body = record.model_dump_json(exclude={"version", "updated_at"}).encode()
    return body if is_live(record) else b"~" + body


def test_a_record_read_back_unchanged_is_written_as_read() -> None:
    """A record read and written back unchanged (the bench's get + save, the hint of an
    update that changes nothing) is not dated again and is stored as the same bytes."""
    clock = HLC(node="a")
    stored = stamp(Session(chat_id=1, theme="couples", drawn={"d": ["x", "y"]}), clock)
    stored.__dict__.update(version=4, updated_at=12.5)
    raw = dump_value(stored)
    read = load_value(Session, "1", raw)
    assert read == stored
    assert stamp(read, clock) is read
    assert dump_value(read) == raw
    assert dump_body(read) == _full_body(read)
    assert pickle.loads(pickle.dumps(read)) == read  # noqa: S301 - our own bytes
    assert copy.deepcopy(read).model_dump() == read.model_dump()


def test_a_change_after_a_read_is_seen_however_it_is_made() -> None:
    """In-place edits of a read record, assignments and edits of a copy are all new events
    and new bytes; other readers of the same stored value see none of them."""
    clock = HLC(node="a")
    base = stamp(Session(chat_id=1, theme="couples", drawn={"d": ["x"]}), clock)
    raw = dump_value(base)

    in_place = load_value(Session, "1", raw)
    in_place.drawn["d"].append("y")
    drawn = stamp(in_place, clock)
    assert drawn is not in_place
    assert drawn.drawn == {"d": ["x", "y"]}
    assert drawn.stamp > base.stamp
    assert dump_body(in_place) == _full_body(in_place)

    assigned = load_value(Session, "1", raw)
    assert assigned.drawn == {"d": ["x"]}  # the in-place edit above did not leak
    assigned.theme = "sex"
    assert stamp(assigned, clock).theme == "sex"
    assert b'"sex"' in dump_body(assigned)

    copied = load_value(Session, "1", raw).model_copy(update={"level": 3})
    assert stamp(copied, clock).level == 3
    assert dump_body(copied) == _full_body(copied)

    meta_edit = load_value(Session, "1", raw)
    meta_edit.meta["theme"] = [clock.now(), "z", "provocation"]
    assert dump_body(meta_edit) == _full_body(meta_edit)

    stats = stamp(UserStats(user_id=1, cards_drawn=2, last_seen=5.0), clock)
    seen = load_value(UserStats, "1", dump_value(stats))
    seen.last_seen = 9.0  # an inline field: its value is its own state
    assert dump_body(seen) == _full_body(seen)
    assert load_value(UserStats, "1", dump_value(seen)).last_seen == 9.0
