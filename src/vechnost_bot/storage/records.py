"""The records the bot keeps, and how two versions of one record merge.

Every field of a record names its *merge policy* in its annotation::

    theme: Annotated[ThemeId | None, LWW()] = None

The policy keeps, in ``record.meta[field]``, the dated events behind the field's
value (who set it when, which cards were drawn in which reshuffle epoch, per-process
counts). Two rules make the whole thing work:

- **Stamping** (:func:`stamp`): before a write, the storage compares every field
  with what its metadata says it was and turns each difference into new events,
  dated by a hybrid logical clock (:class:`HLC`). Handlers just change fields.
- **Merging** (:func:`merge`): two versions of one record (Redis and the local store
  after a failover, two processes, a replayed journal) are joined field by field.
  Every policy's join is commutative, associative and idempotent, so the order in
  which versions meet never matters, and an acknowledged event is never erased by a
  merge (only by a later event: an undraw, a reshuffle, a reset, a delete).

``version`` is only the compare-and-set counter of one store; ``stamp`` is the
record's newest event (HLC) and ``deleted`` the time of its last delete: a record is
live while ``stamp > deleted``.
"""

from __future__ import annotations

import abc
import json
import operator
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Final, Literal, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

__all__ = [
    "HLC",
    "LWW",
    "RECORD_KINDS",
    "SCHEMA_VERSION",
    "AddRemoveSet",
    "ContentType",
    "Counter",
    "DatedFlag",
    "EpochSet",
    "Key",
    "Language",
    "Max",
    "Min",
    "PerKey",
    "Policy",
    "Record",
    "Session",
    "ThemeId",
    "UserStats",
    "adopt",
    "dump_body",
    "dump_value",
    "is_live",
    "load_value",
    "merge",
    "shallow_copy",
    "stamp",
    "tombstone",
]

SCHEMA_VERSION = 1
"""Bumped when a record's shape changes incompatibly; part of every Redis key.

Adding a field with a policy is compatible: old values read with empty metadata
(see :func:`adopt`)."""

Language = Literal["ru", "en", "cs"]
ThemeId = Literal["acquaintance", "couples", "provocation", "sex"]
ContentType = Literal["questions", "tasks"]

Stamp = int
"""A hybrid-logical-clock time: ``(unix milliseconds << 16) + logical counter``."""

_LOGICAL_BITS: Final = 16


# -- the clock ---------------------------------------------------------------------------
class HLC:
    """A hybrid logical clock: close to wall time, but never behind anything it has seen.

    ``now()`` is strictly increasing; ``observe()`` moves it past a stamp read from a
    store, so a write that follows a read is always dated after it, even when the wall
    clock was stepped back. ``node`` names this process in counters and breaks ties.
    """

    def __init__(
        self,
        *,
        node: str | None = None,
        wall: Callable[[], float] = time.time,
        floor: Stamp = 0,
    ) -> None:
        self.node = secrets.token_hex(4) if node is None else node
        self._wall = wall
        self.last: Stamp = floor
        self.generation = 0

    def now(self) -> Stamp:
        """A new stamp, later than every stamp given or observed before."""
        physical = int(self._wall() * 1000) << _LOGICAL_BITS
        self.last = max(self.last + 1, physical)
        return self.last

    def observe(self, stamp: Stamp) -> None:
        """Never give a stamp at or below ``stamp`` again."""
        if stamp > self.last:
            self.last = stamp

    @property
    def counter_node(self) -> str:
        """This process's entry in counters, for the current lineage (see ``new_lineage``)."""
        return f"{self.node}.{self.generation}"

    def new_lineage(self) -> None:
        """Start fresh counter entries: called when the storage changes which store is the
        base of its writes (failover, failback), so a count made from a base that does
        not know this process's earlier count never replaces it."""
        self.generation += 1


def wall_seconds(stamp: Stamp) -> float:
    """The unix time a stamp was made at."""
    return (stamp >> _LOGICAL_BITS) / 1000.0


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# -- policies ----------------------------------------------------------------------------
class Policy(abc.ABC):
    """How one field's value is dated and merged. Subclasses are immutable and shared.

    ``meta`` is the policy's JSON-safe state; ``None`` means "no event yet". When
    ``INLINE`` is true the value is its own state (nothing is kept in ``record.meta``).
    ``value(None)`` is the field's empty value.
    """

    NAME: ClassVar[str]
    RULE: ClassVar[str]
    INLINE: ClassVar[bool] = False

    @abc.abstractmethod
    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        """The state after the local change from ``value(meta)`` to ``value``."""

    @abc.abstractmethod
    def join(self, a: Any, b: Any) -> Any:
        """The merge of two states (commutative, associative, idempotent)."""

    @abc.abstractmethod
    def value(self, meta: Any) -> Any:
        """The field value a state stands for."""

    def forget(self, meta: Any, before: Stamp) -> Any:
        """The state without events at or before ``before`` (a delete)."""
        del before
        return meta

    def adopt(self, value: Any) -> Any:
        """The state of a value stored without metadata (before policies existed)."""
        return None if value is None else self.stamp(value, None, _ZeroClock())


class _ZeroClock(HLC):
    """Dates legacy values just after time 0, so that any real event wins over them, the
    same way in every process (1, 2, 3 … in the value's order)."""

    def __init__(self) -> None:
        super().__init__(node="")
        self._n = 0

    def now(self) -> Stamp:
        self._n += 1
        return self._n


class Key(Policy):
    """The record's id: equal in both versions by construction."""

    NAME = "key"
    RULE = "the record's id; never changes"
    INLINE = True

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        return value

    def join(self, a: Any, b: Any) -> Any:
        return a if a is not None else b

    def value(self, meta: Any) -> Any:
        return meta


class Max(Policy):
    """The largest value wins (a "last seen" time, a high-water mark)."""

    NAME = "max"
    RULE = "the larger value"
    INLINE = True

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        return value

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        return max(a, b)

    def value(self, meta: Any) -> Any:
        return meta


class Min(Max):
    """The smallest set value wins; 0 and None mean "not set" (a "first seen" time)."""

    NAME = "min"
    RULE = "the smaller value that is set (0 / None = not set)"

    def join(self, a: Any, b: Any) -> Any:
        if not a or not b:
            return b if b else a
        return min(a, b)


class LWW(Policy):
    """Last writer wins, by HLC stamp (then node, then value, so ties are deterministic).

    State: ``[stamp, node, value]``.
    """

    NAME = "lww"
    RULE = "the value with the later HLC stamp (ties: node id, then value)"

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        if meta is not None and meta[2] == value:
            return meta
        if meta is None and value is None:
            return None
        return [clock.now(), clock.node, value]

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        key_a = (a[0], a[1], _canonical(a[2]))
        key_b = (b[0], b[1], _canonical(b[2]))
        return a if key_a >= key_b else b

    def value(self, meta: Any) -> Any:
        return None if meta is None else meta[2]

    def forget(self, meta: Any, before: Stamp) -> Any:
        return None if meta is None or meta[0] <= before else meta


class DatedFlag(Policy):
    """A yes that stays until an explicit, dated no (an 18+ consent).

    State: ``[given_at, reset_at]``; the flag is set while ``given_at > reset_at``.
    """

    NAME = "dated_flag"
    RULE = "set while the latest 'given' is after the latest 'reset' (each kept, max)"

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        given, reset = meta if meta is not None else (0, 0)
        if bool(value) == (given > reset):
            return meta
        if value:
            return [clock.now(), reset]
        return [given, clock.now()]

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        return [max(a[0], b[0]), max(a[1], b[1])]

    def value(self, meta: Any) -> Any:
        return meta is not None and meta[0] > meta[1]

    def forget(self, meta: Any, before: Stamp) -> Any:
        if meta is None:
            return None
        given, reset = (0 if t <= before else t for t in meta)
        return None if not given and not reset else [given, reset]

    def adopt(self, value: Any) -> Any:
        return [1, 0] if value else None


class AddRemoveSet(Policy):
    """A set of ids with a dated add and a dated remove per id (favourites).

    State: ``[{id: added_at}, {id: removed_at}]``; an id is in while added after its
    last remove. The value is a list ordered by when each id was added.
    """

    NAME = "add_remove_set"
    RULE = "per id: in while its latest add is after its latest remove (each kept, max)"

    def _live(self, adds: dict[str, int], dels: dict[str, int]) -> list[str]:
        live = [(at, item) for item, at in adds.items() if at > dels.get(item, 0)]
        return [item for _, item in sorted(live)]

    def _diff(
        self, value: Iterable[str], adds: dict[str, int], dels: dict[str, int], clock: HLC
    ) -> tuple[dict[str, int], dict[str, int]] | None:
        items = value if isinstance(value, list) else list(value)
        if not dels and (not adds or min(adds.values()) > 0):
            present: Any = adds.keys()  # nothing removed: every added id is in
        else:
            present = {item for item, at in adds.items() if at > dels.get(item, 0)}
        if present == set(items):
            return None  # the same ids (an order is not an event): the usual case, cheap
        wanted = list(dict.fromkeys(items))
        new_adds, new_dels = dict(adds), dict(dels)
        keep = set(wanted)
        for item in self._live(adds, dels):
            if item not in keep:
                new_dels[item] = clock.now()
        for item in wanted:
            if item not in present:
                new_adds[item] = clock.now()
        return new_adds, new_dels

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        adds, dels = meta if meta is not None else ({}, {})
        changed = self._diff(value or (), adds, dels, clock)
        if changed is None:
            return meta
        return [changed[0], changed[1]]

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        return [_max_map(a[0], b[0]), _max_map(a[1], b[1])]

    def value(self, meta: Any) -> Any:
        return [] if meta is None else self._live(meta[0], meta[1])

    def forget(self, meta: Any, before: Stamp) -> Any:
        if meta is None:
            return None
        adds = {k: t for k, t in meta[0].items() if t > before}
        dels = {k: t for k, t in meta[1].items() if t > before}
        return [adds, dels] if adds or dels else None


class EpochSet(AddRemoveSet):
    """Cards drawn from one deck: an add/remove set within a reshuffle epoch.

    State: ``[epoch, {id: drawn_at}, {id: undrawn_at}]``. Removing the whole value (a
    reshuffle, a reset) starts the next epoch; the higher epoch wins, and within one
    epoch the draws are united, so a partition may show a card twice but never
    forgets one. Used as ``PerKey(EpochSet())`` (one epoch per deck); the value is the
    list of ids in draw order, or None for a deck not played in this epoch.
    """

    NAME = "epoch_set"
    RULE = "higher reshuffle epoch wins; same epoch: per card, latest draw vs undraw (max)"

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        epoch, adds, dels = meta if meta is not None else (0, {}, {})
        if value is None:
            if not self._live(adds, dels):
                return meta
            return [epoch + 1, {}, {}]
        changed = self._diff(value, adds, dels, clock)
        if changed is None:
            return meta
        return [epoch, changed[0], changed[1]]

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        if a[0] != b[0]:
            return a if a[0] > b[0] else b
        return [a[0], _max_map(a[1], b[1]), _max_map(a[2], b[2])]

    def value(self, meta: Any) -> Any:
        if meta is None:
            return None
        return self._live(meta[1], meta[2]) or None

    def forget(self, meta: Any, before: Stamp) -> Any:
        if meta is None:
            return None
        adds = {k: t for k, t in meta[1].items() if t > before}
        dels = {k: t for k, t in meta[2].items() if t > before}
        return [meta[0], adds, dels]


class Counter(Policy):
    """A count that adds up across processes, each increment counted exactly once.

    State: ``{node: [added, subtracted]}``: each process lineage keeps its own running
    totals and the join takes the larger per entry, so replaying a write (a journal
    adopted after a crash, a reconcile cut short) never counts it twice.
    """

    NAME = "counter"
    RULE = "per process entry: the larger total (added, subtracted); value = sum"

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        entries: dict[str, list[int]] = meta if meta is not None else {}
        delta = int(value or 0) - self.value(entries)
        if not delta:
            return meta
        node = clock.counter_node
        added, subtracted = entries.get(node, (0, 0))
        if delta > 0:
            added += delta
        else:
            subtracted -= delta
        return {**entries, node: [added, subtracted]}

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        joined = dict(a)
        for node, (added, subtracted) in b.items():
            mine = joined.get(node)
            if mine is None:
                joined[node] = [added, subtracted]
            else:
                joined[node] = [max(mine[0], added), max(mine[1], subtracted)]
        return joined

    def value(self, meta: Any) -> Any:
        if not meta:
            return 0
        return sum(added - subtracted for added, subtracted in meta.values())

    def adopt(self, value: Any) -> Any:
        return {"legacy": [int(value), 0]} if value else None


class PerKey(Policy):
    """A dict whose every key follows ``inner`` (per-deck draws, per-user language).

    A key whose inner value is empty (None, False, []) is left out of the value.
    """

    NAME = "per_key"
    RULE = "each key merged by its inner policy"

    def __init__(self, inner: Policy) -> None:
        self.inner = inner

    @property
    def description(self) -> str:
        """``per_key(inner)``."""
        return f"per_key({self.inner.NAME})"

    def stamp(self, value: Any, meta: Any, clock: HLC) -> Any:
        states: dict[str, Any] = meta if meta is not None else {}
        value = value or {}
        changed: dict[str, Any] | None = None
        keys = states.keys() if value.keys() <= states.keys() else states.keys() | value.keys()
        for key in keys:
            before = states.get(key)
            after = self.inner.stamp(value.get(key), before, clock)
            if after is not before:
                if changed is None:
                    changed = dict(states)
                changed[key] = after
        return meta if changed is None else changed

    def join(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        joined = dict(a)
        for key, state in b.items():
            joined[key] = self.inner.join(joined.get(key), state)
        return joined

    def value(self, meta: Any) -> Any:
        if not meta:
            return {}
        result = {}
        for key in sorted(meta):
            item = self.inner.value(meta[key])
            if item:
                result[key] = item
        return result

    def forget(self, meta: Any, before: Stamp) -> Any:
        if meta is None:
            return None
        return {k: self.inner.forget(state, before) for k, state in meta.items()}

    def adopt(self, value: Any) -> Any:
        if not value:
            return None
        return {key: self.inner.adopt(item) for key, item in value.items()}


def _max_map(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    joined = dict(a)
    for key, at in b.items():
        if at > joined.get(key, 0):
            joined[key] = at
    return joined


# -- records -----------------------------------------------------------------------------
_RESERVED: Final = frozenset({"version", "updated_at", "stamp", "deleted", "meta"})


class Record(BaseModel):
    """A mergeable record. Subclasses give every field a policy (``Annotated[..., P()]``)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    KIND: ClassVar[str]
    POLICIES: ClassVar[dict[str, Policy]] = {}
    KEY_FIELD: ClassVar[str]

    version: int = Field(default=0, ge=0)
    """The compare-and-set counter of the store the record was read from."""
    updated_at: float = Field(default=0.0, ge=0.0)
    """Wall time of the last write (for people; merges use ``stamp``)."""
    stamp: int = Field(default=0, ge=0)
    """The newest event in the record (HLC)."""
    deleted: int = Field(default=0, ge=0)
    """When the record was last deleted (HLC); it is live while ``stamp > deleted``."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Each field's dated events, kept by its policy; owned by the storage."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        policies: dict[str, Policy] = {}
        for name, info in cls.model_fields.items():
            if name in _RESERVED:
                continue
            found = [item for item in info.metadata if isinstance(item, Policy)]
            if len(found) != 1:
                raise TypeError(f"{cls.__name__}.{name} must name one merge policy")
            policies[name] = found[0]
        keys = [name for name, policy in policies.items() if isinstance(policy, Key)]
        if len(keys) != 1:
            raise TypeError(f"{cls.__name__} must have exactly one Key() field")
        cls.POLICIES = policies
        cls.KEY_FIELD = keys[0]

    @property
    def key(self) -> str:
        """The record's id within its kind (a chat id, a user id)."""
        return str(getattr(self, self.KEY_FIELD))

    @classmethod
    def blank(cls, key: str) -> Self:
        """An empty record with id ``key``."""
        return cls.model_validate({cls.KEY_FIELD: key})


R = TypeVar("R", bound=Record)


def _state(record: Record, name: str, policy: Policy) -> Any:
    return getattr(record, name) if policy.INLINE else record.meta.get(name)


def _default(field: FieldInfo) -> Any:
    """A field's default: a fresh one from its factory (pydantic's ``get_default`` would
    inspect the factory's signature on every call)."""
    factory = field.default_factory
    if factory is None:
        return field.default
    return factory()  # type: ignore[call-arg]  # our factories take no argument


def _materialize(model: type[R], fields: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    for name, policy in model.POLICIES.items():
        if not policy.INLINE:
            state = meta.get(name)
            if state is None:
                meta.pop(name, None)
                fields[name] = _default(model.model_fields[name])
            else:
                fields[name] = policy.value(state)
    return fields


def stamp(record: R, clock: HLC) -> R:
    """``record`` with every field that differs from its metadata turned into events.

    Returns ``record`` itself when nothing changed, else a new record whose values are
    the canonical form of their new state (a set in draw order, a counter's sum).
    """
    if record.stamp > record.deleted:
        parsed = _origin(record)
        if parsed is not None and parsed.consistent:
            return record  # as read, and its values are its metadata's: nothing to date
    meta = record.meta
    changed: dict[str, Any] = {}
    for name, policy in record.POLICIES.items():
        if policy.INLINE:
            continue
        before = meta.get(name)
        after = policy.stamp(getattr(record, name), before, clock)
        if after is not before:
            changed[name] = after
    if not changed and record.stamp > record.deleted:
        return record
    new_meta = {**meta, **changed}
    fields = dict(record.__dict__)
    fields["meta"] = new_meta
    fields["stamp"] = clock.now()
    model = type(record)
    return cast("R", model.model_construct(**_materialize(model, fields, new_meta)))


def merge(a: R, b: R) -> R:
    """The join of two versions of one record: commutative, associative, idempotent."""
    if a.key != b.key or type(a) is not type(b):
        raise ValueError(f"cannot merge {a.KIND}:{a.key} with {b.KIND}:{b.key}")
    deleted = max(a.deleted, b.deleted)
    meta: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for name, policy in a.POLICIES.items():
        joined = policy.join(_state(a, name, policy), _state(b, name, policy))
        if deleted and not policy.INLINE:
            joined = policy.forget(joined, deleted)
        if policy.INLINE:
            fields[name] = joined
        elif joined is not None:
            meta[name] = joined
    fields.update(
        version=max(a.version, b.version),
        updated_at=max(a.updated_at, b.updated_at),
        stamp=max(a.stamp, b.stamp),
        deleted=deleted,
        meta=meta,
    )
    model = type(a)
    return cast("R", model.model_construct(**_materialize(model, fields, meta)))


def tombstone(model: type[R], key: str, clock: HLC, *, version: int = 0) -> R:
    """A deleted record: empty, with ``deleted`` and ``stamp`` at now."""
    now = clock.now()
    record = model.blank(key)
    record.__dict__.update(version=version, stamp=now, deleted=now, updated_at=time.time())
    return record


def shallow_copy(record: R) -> R:
    """A new record object holding the same values (``record.__copy__()`` without pydantic's
    generic handling of extras and privates, which records have none of)."""
    copy = object.__new__(type(record))
    object.__setattr__(copy, "__dict__", dict(record.__dict__))
    object.__setattr__(copy, "__pydantic_fields_set__", set(record.__pydantic_fields_set__))
    object.__setattr__(copy, "__pydantic_extra__", None)
    object.__setattr__(copy, "__pydantic_private__", None)
    return copy


def is_live(record: Record) -> bool:
    """False for a tombstone (deleted after its newest event)."""
    return record.stamp > record.deleted


def adopt(record: R) -> R:
    """Give a record stored before policies existed the metadata of its values (in place)."""
    meta = record.meta
    for name, policy in record.POLICIES.items():
        if policy.INLINE or name in meta:
            continue
        state = policy.adopt(getattr(record, name))
        if state is not None:
            meta[name] = state
    if not record.stamp and not record.deleted:
        record.__dict__["stamp"] = 1  # older than any real event, but live
    return record


# -- the stored form -----------------------------------------------------------------------
_SCHEMA_BYTES: Final = str(SCHEMA_VERSION).encode()
_BODY_EXCLUDE: Final = frozenset({"version", "updated_at"})


def dump_body(record: Record) -> bytes:
    """The record's JSON without version and time; a tombstone's starts with ``~``."""
    parsed = _origin(record)
    if parsed is not None:
        body = parsed.body
    else:
        body = record.model_dump_json(exclude=set(_BODY_EXCLUDE)).encode()
    return body if is_live(record) else b"~" + body


def dump_value(record: Record) -> bytes:
    """``<schema>:<version>:<updated_at>:<body>``, the one stored form (Redis, local store)."""
    return b"%s:%d:%r:%s" % (_SCHEMA_BYTES, record.version, record.updated_at, dump_body(record))


def load_value(model: type[R], key: str, raw: bytes) -> R:
    """The record (or tombstone) stored as ``raw``; ValueError when it is not one of ours.

    Values written before policies existed get their metadata (:func:`adopt`).
    """
    parts = raw.split(b":", 3)
    if len(parts) != 4 or parts[0] != _SCHEMA_BYTES:
        raise ValueError("schema" if len(parts) == 4 and parts[0].isdigit() else "invalid")
    _, version, updated_at, body = parts
    tombstone_marked = body.startswith(b"~") or not body
    if body.startswith(b"~"):
        body = body[1:]
    if not body:  # an old-style tombstone: nothing but the header
        record = model.blank(key)
        record.__dict__["stamp"] = record.__dict__["deleted"] = 1
    else:
        record = _parse_body(model, body)
    record.__dict__["version"] = int(version)
    record.__dict__["updated_at"] = float(updated_at)
    if record.version < 0:
        raise ValueError("negative version")
    if tombstone_marked and is_live(record):
        record.__dict__["deleted"] = record.stamp
    if not record.stamp:
        adopt(record)
    return record


_PARSED_SIZE: Final = 256
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_LIST: Final = frozenset({list})


class _Parsed:
    """One stored body and the record it stands for (the template, never handed out).

    Readers get copies of the template (:meth:`copy`), each remembered as coming from
    this body (see :func:`_origin`), so that a record written back unchanged (the read
    before a write, the hint of every update) is neither stamped nor dumped again.
    """

    __slots__ = ("_consistent", "body", "compared", "containers", "record", "values")

    def __init__(self, body: bytes, record: Record) -> None:
        self.body = body
        self.record = record
        self.containers = tuple(
            (name, _copier(value))
            for name, value in record.__dict__.items()
            if type(value) not in _SCALARS and name != "meta"
        )
        self.values = _body_values(type(record))
        self.compared = self.values(record.__dict__)
        self._consistent: bool | None = None

    def copy(self) -> Record:
        """A new record equal to the template: its own lists and dicts and top of ``meta``
        (the policy states inside ``meta`` are shared: policies never change a state in
        place, they build new ones)."""
        template = self.record
        fields = dict(template.__dict__)
        for name, copier in self.containers:
            fields[name] = copier(fields[name])
        meta = fields["meta"] = _Meta(template.meta)
        meta.origin = self
        # what BaseModel.__copy__ does, without its generic handling of extras and privates
        copy = object.__new__(type(template))
        object.__setattr__(copy, "__dict__", fields)
        object.__setattr__(copy, "__pydantic_fields_set__", set(template.__pydantic_fields_set__))
        object.__setattr__(copy, "__pydantic_extra__", None)
        object.__setattr__(copy, "__pydantic_private__", None)
        return copy

    @property
    def consistent(self) -> bool:
        """Stamping the template would change nothing (its values are its metadata's)."""
        if self._consistent is None:
            template = self.record
            self._consistent = is_live(template) and all(
                policy.stamp(getattr(template, name), template.meta.get(name), _ZeroClock())
                is template.meta.get(name)
                for name, policy in template.POLICIES.items()
                if not policy.INLINE
            )
        return self._consistent


_parsed: OrderedDict[tuple[type[Record], bytes], _Parsed] = OrderedDict()
"""Bodies validated lately, by their exact bytes (see :func:`_parse_body`)."""


class _Meta(dict[str, Any]):
    """A record's ``meta`` that knows which stored body it was copied from (see
    :func:`_origin`). Equal to, dumped as, pickled and deep-copied as a plain dict."""

    __slots__ = ("origin",)
    origin: _Parsed

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


def _parse_body(model: type[R], body: bytes) -> R:
    """``model.model_validate_json(body)``, validated once per distinct body.

    The body leaves out version and write time, so a record read again unchanged has
    the same body and skips pydantic (half the cost of a read). Every call returns its
    own copy (:meth:`_Parsed.copy`).
    """
    cache_key = (model, body)
    parsed = _parsed.get(cache_key)
    if parsed is None:
        parsed = _Parsed(body, model.model_validate_json(body))
        _parsed[cache_key] = parsed
        if len(_parsed) > _PARSED_SIZE:
            _parsed.popitem(last=False)
    else:
        _parsed.move_to_end(cache_key)
    return cast("R", parsed.copy())


def _origin(record: Record) -> _Parsed | None:
    """The body ``record`` was read from, if it still equals what that body says (every
    field but version and write time; ``meta`` state by state, identity first)."""
    meta = record.meta
    if type(meta) is not _Meta:
        return None
    parsed = meta.origin
    if type(record) is not type(parsed.record) or parsed.values(record.__dict__) != parsed.compared:
        return None
    return parsed


def _copier(value: Any) -> Callable[[Any], Any]:
    """The cheapest copy of a JSON-like value shaped like ``value`` (in the usual shapes:
    a list of scalars, a dict of those; anything else is copied generically)."""
    if type(value) is list and {type(v) for v in value} <= _SCALARS:
        return list.copy
    if (
        type(value) is dict
        and {type(v) for v in value.values()} <= _LIST
        and {type(x) for v in value.values() for x in v} <= _SCALARS
    ):
        return _copy_dict_of_lists
    return _copy_json


def _copy_dict_of_lists(value: Any) -> Any:
    return {k: v[:] for k, v in value.items()}  # only for the template it was chosen for


_body_fields: dict[type[Record], Callable[[dict[str, Any]], tuple[Any, ...]]] = {}


def _body_values(model: type[Record]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A record's ``__dict__`` -> the values its body holds (``meta`` included)."""
    getter = _body_fields.get(model)
    if getter is None:
        names = [name for name in model.model_fields if name not in _BODY_EXCLUDE]
        getter = _body_fields[model] = operator.itemgetter(*names)
    return getter


def _copy_json(value: Any) -> Any:
    if type(value) is list:
        return [v if type(v) in _SCALARS else _copy_json(v) for v in value]
    if type(value) is dict:
        return {k: v if type(v) in _SCALARS else _copy_json(v) for k, v in value.items()}
    return value


# -- the bot's records ---------------------------------------------------------------------
class Session(Record):
    """One chat's game: language, where the players are, and which cards they drew."""

    KIND: ClassVar[str] = "session"

    chat_id: Annotated[int, Key()]
    language: Annotated[Language | None, LWW()] = None
    theme: Annotated[ThemeId | None, LWW()] = None
    level: Annotated[int | None, LWW()] = None
    content: Annotated[ContentType | None, LWW()] = None
    # deck key ("acquaintance:1:questions") -> ids drawn from it, in draw order
    drawn: Annotated[dict[str, list[str]], PerKey(EpochSet())] = Field(default_factory=dict)
    adult_confirmed: Annotated[bool, DatedFlag()] = False
    last_card: Annotated[str | None, LWW()] = None
    # Telegram update ids whose effect this game's records hold, newest last: a
    # redelivered update (a replica died before its answer) is recognised, not applied
    # again. Written with the effect, in the same write.
    recent_updates: Annotated[list[int], LWW()] = Field(default_factory=list)


class UserStats(Record):
    """What one player did: for an end-of-session summary and the welcome back."""

    KIND: ClassVar[str] = "user"

    user_id: Annotated[int, Key()]
    cards_drawn: Annotated[int, Counter()] = 0
    games_started: Annotated[int, Counter()] = 0
    first_seen: Annotated[float, Min()] = 0.0
    last_seen: Annotated[float, Max()] = 0.0


RECORD_KINDS: dict[str, type[Record]] = {model.KIND: model for model in (Session, UserStats)}
"""Every record model by its KIND (what the local store or a Redis key names)."""
