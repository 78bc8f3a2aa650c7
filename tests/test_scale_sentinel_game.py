"""End to end, issue 11's test: two-player games on three bot replicas over Sentinel.

A Sentinel topology on free loopback ports (a master, 2 replicas with
``min-replicas-to-write 1``, 3 sentinels, down-after 1000 ms); 3 real ``vechnost run``
replicas in webhook mode with ``REDIS_SENTINELS``; rooms of two partners on their own
phones, whose updates the Telegram-like pusher spreads round robin over the replicas.
The master is SIGKILLed when half of the draws are done. Checked: every update got its
2xx in the end, each chat in order, no acknowledged draw lost, no card dealt twice, both
phones of a room saw the same cards, and every replica followed the new master.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.sentinel import MASTER_NAME, Election, SentinelTopology
from tests.support.webhook_bot import NEXT, SECRET, BotReplica, Player, WebhookBotApi, tally
from tests.support.webhook_pusher import WebhookPusher

pytestmark = pytest.mark.slow

ROOMS = 3
DRAWS = 10  # numbered cards per room after the first


@dataclass
class Room:
    """Two partners, each on their own phone (private chat), playing one deck in a room.

    The host makes the room (``/room``) and the guest opens its invite link; then whoever
    has the turn taps "next card". Every card reaches both phones, so each phone is a
    :class:`Player` view whose ``draws`` are the room's.
    """

    host: Player
    guest: Player
    link: str = ""
    turns: list[int] = field(default_factory=list)  # the chat that drew each card

    @property
    def phones(self) -> tuple[Player, Player]:
        return (self.host, self.guest)

    async def begin(self) -> None:
        """Make the room, join it, choose the deck and deal the first numbered card."""
        api = self.host.api
        await self.host.step("say", "/start")
        since = len(api.calls)
        await self.host.step("say", "/room")
        self.link = _invite(api, self.host.chat, since)
        await self.guest.step("say", f"/start {self.link}")
        await self.host.step("tap", "T:a")
        await self.host.step("tap", "V:a:1")
        while not self.host.shown():
            await self._drawer().step("tap", NEXT)  # the opening cards are not counted

    async def draw(self) -> None:
        """The partner whose turn it is taps "next card"."""
        drawer = self._drawer()
        await drawer.step("tap", NEXT)
        self.turns.append(drawer.chat)
        for phone in self.phones:
            phone.draws += 1

    def _drawer(self) -> Player:
        """The phone whose newest keyboard offers the next card (only the drawer's does)."""
        api = self.host.api
        offered = [
            phone
            for phone in self.phones
            if (message := api.last_keyboard_message(phone.chat)) is not None
            and NEXT in [data for _label, data in api.buttons(message)]
        ]
        assert len(offered) == 1, [phone.chat for phone in offered]
        return offered[0]


def _invite(api: WebhookBotApi, chat: int, since: int) -> str:
    """The ``room_<number>`` payload of the invite link sent to ``chat`` after ``since``."""
    for call in api.replies(chat, since):
        found = re.search(r"\?start=(room_\d+)", str(call.params.get("text") or ""))
        if found:
            return found.group(1)
    raise AssertionError(f"no room invite in chat {chat}")


@pytest.fixture
async def topology(tmp_path: Path) -> AsyncIterator[SentinelTopology]:
    """1 master + 2 replicas (min-replicas-to-write 1) + 3 sentinels, down-after 1000 ms
    (at 500 ms on this loaded machine the sentinels sometimes took the just-promoted
    master for dead too and failed over twice: docs/scaling.md)."""
    topo = SentinelTopology(
        tmp_path / "topology",
        replicas=2,
        down_after_ms=1000,
        extra_args=("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"),
    )
    await asyncio.to_thread(topo.start)
    yield topo
    await asyncio.to_thread(topo.stop)


@pytest.fixture
async def bots(
    topology: SentinelTopology, tmp_path: Path
) -> AsyncIterator[tuple[WebhookBotApi, list[BotReplica]]]:
    """The fake Bot API and 3 ready ``vechnost run`` webhook replicas on ``topology``
    (REDIS_SENTINELS), SIGKILLed by pid afterwards if still running."""
    sentinels = ",".join(f"{host}:{port}" for host, port in topology.sentinel_addresses)
    extra = {"REDIS_SENTINELS": sentinels, "REDIS_SENTINEL_MASTER": MASTER_NAME}
    async with WebhookBotApi() as api:
        started = [
            BotReplica(f"r{n}", tmp_path, api, "redis://localhost:6379/0", extra=extra)
            for n in range(3)
        ]
        try:
            for bot in started:
                await bot.start()
            await asyncio.gather(*(bot.ready(timeout=60) for bot in started))
            yield api, started
        finally:
            for bot in started:
                await bot.kill()


async def test_master_killed_mid_game_rooms_on_three_replicas_lose_nothing(
    topology: SentinelTopology, bots: tuple[WebhookBotApi, list[BotReplica]]
) -> None:
    """Three rooms on three replicas, the master SIGKILLed half-way: every update
    answered 2xx in the end and in order per chat, 0 draws lost, 0 cards repeated, the
    same cards on both phones of a room, the game went on on the elected master, and
    every replica's log names the masters (``master=host:port``, never ``port=0``)."""
    api, replicas = bots
    async with WebhookPusher(
        [bot.url for bot in replicas], SECRET, balance="round_robin", give_up_after=60
    ) as pusher:
        api.pusher = pusher
        rooms = [
            Room(Player(api, 20_000 + 2 * n), Player(api, 20_001 + 2 * n)) for n in range(ROOMS)
        ]
        await asyncio.gather(*(room.begin() for room in rooms))
        killed_at, election = await _play_and_kill_the_master(rooms, topology)
        await pusher.wait_idle(timeout=60)

    phones = [phone for room in rooms for phone in room.phones]
    figures = tally(phones)
    print(  # pytest -s shows the figures
        f"election_s={election.named_after:.2f} {figures} "
        f"attempts={len(pusher.attempts)} answers_503="
        f"{sum(a.status == 503 for a in pusher.attempts)}"
    )
    assert pusher.dropped == []
    pushed = {attempt.update_id for attempt in pusher.attempts}
    assert pushed == {delivery.update_id for delivery in pusher.deliveries}
    for phone in phones:
        delivered = pusher.delivered_ids(phone.chat)
        assert delivered == sorted(set(delivered)), (phone.chat, delivered)  # in order, once
    assert figures["draws_lost"] == 0, figures
    assert figures["repeats"] == 0, figures
    assert figures["extra_draws"] == 0, figures
    for room in rooms:
        assert room.host.dealt()[0] == room.guest.dealt()[0], room.link
        assert len(room.host.dealt()[0]) == DRAWS + 1
        assert len(set(room.turns)) == 2, "the partners did not take turns"
    assert {delivery.target for delivery in pusher.deliveries} == {bot.url for bot in replicas}
    # The kill was felt: updates sent before the election were answered only after it
    # (they waited out the failover), and the games went on on the elected master.
    elected_at = killed_at + election.named_after
    held = [a for a in pusher.attempts if killed_at < a.started < elected_at < a.finished]
    assert held, "no update waited for the election"
    assert sum(d.at > elected_at for d in pusher.deliveries) >= ROOMS
    for bot in replicas:
        events = bot.events()
        switches = [e for e in events if e.get("event") == "sentinel_master_switched"]
        assert [e.get("master") for e in switches][-1:] == [f"127.0.0.1:{election.new_port}"]
        states = [e for e in events if e.get("event") in ("redis_connected", "redis_state_changed")]
        assert all("port" not in e for e in states), "a Sentinel log line names no master"
        running = [e.get("master") for e in states if e.get("state") == "running"]
        assert running[-1:] == [f"127.0.0.1:{election.new_port}"], running


async def _play_and_kill_the_master(
    rooms: list[Room], topology: SentinelTopology
) -> tuple[float, Election]:
    """Every room draws ``DRAWS`` cards; the master is SIGKILLed once half of all draws
    are done. The kill's ``time.monotonic()`` and the sentinels' election."""
    done = 0
    killing: asyncio.Task[tuple[float, Election]] | None = None

    async def kill() -> tuple[float, Election]:
        killed_at = time.monotonic()
        old_port = await asyncio.to_thread(topology.kill_master)
        return killed_at, await topology.wait_new_master(old_port, killed_at)

    async def play(room: Room) -> None:
        nonlocal done, killing
        for _ in range(DRAWS):
            await room.draw()
            done += 1
            if killing is None and done >= ROOMS * DRAWS // 2:
                killing = asyncio.create_task(kill())

    await asyncio.gather(*(play(room) for room in rooms))
    assert killing is not None
    return await killing
