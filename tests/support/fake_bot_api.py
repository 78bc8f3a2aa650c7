"""A local HTTP server that speaks enough of the Telegram Bot API for the bot.

It is a real aiohttp server on loopback: python-telegram-bot talks to it through
``TELEGRAM_API_BASE_URL=http://127.0.0.1:<port>/bot``. Tests inject updates
(messages, callback queries), await the bot's replies, and read the record of
every call. A token listed in ``bad_tokens`` gets ``401 Unauthorized``.

Like Telegram, getUpdates returns only the update types named in ``allowed_updates``
(``inject(..., force=True)`` bypasses that, as an older self-hosted server would).

Faults are injected per method with :meth:`FakeBotApi.fail`: a 429 with
``retry_after``, a 5xx, a call that is carried out and then answered too late (the
client times out) or with a garbled body. Every call is recorded, refused ones too,
with the HTTP status it got.

Run as a process: ``python -m tests.support.fake_bot_api --port N``. Then
``POST /_control/updates`` (JSON update without ``update_id``) injects an update
and ``GET /_control/calls`` lists the calls made so far.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.waiting import PATIENCE

__all__ = ["DEFAULT_TOKEN", "ApiCall", "FakeBotApi", "Fault", "is_reply", "main"]

DEFAULT_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijk"
BOT_ID = 123456789
REPLY_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "editMessageText",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "editMessageCaption",
        "answerCallbackQuery",
    }
)
# Fields whose form values are JSON (python-telegram-bot encodes them so).
_JSON_FIELDS = frozenset(
    {"reply_markup", "allowed_updates", "commands", "scope", "media", "entities",
     "caption_entities", "link_preview_options", "reply_parameters"}
)  # fmt: skip


@dataclass(frozen=True)
class Fault:
    """What the next matching call gets instead of a plain answer.

    ``status`` (not 200): refused with that HTTP status, nothing done (a 429 carries
    ``retry_after``). ``deliver``: the call is carried out (the player sees the message),
    then answered only after ``delay`` seconds (past the client's read timeout) or, with
    ``garbled``, with a body that is not JSON.
    """

    status: int = 200
    retry_after: int | None = None
    deliver: bool = False
    delay: float = 0.0
    garbled: bool = False


@dataclass
class ApiCall:
    """One request the bot made: method, decoded parameters, when, and our answer."""

    method: str
    params: dict[str, Any]
    at: float
    result: Any = None
    token: str = ""
    status: int = 200
    delivered: bool = True

    @property
    def chat_id(self) -> int | None:
        """The chat the call is about, when it names one."""
        value = self.params.get("chat_id")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None


@dataclass
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    injected_at: dict[int, float] = field(default_factory=dict)
    forced: set[int] = field(default_factory=set)
    confirmed_offset: int = 0
    allowed_updates: list[str] | None = None


class FakeBotApi:
    """The fake server. ``async with FakeBotApi() as api:`` starts and stops it."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bad_tokens: Iterable[str] = (),
        username: str = "vechnost_test_bot",
    ) -> None:
        self.host = host
        self.port = port
        self.bad_tokens = set(bad_tokens)
        self.username = username
        self.calls: list[ApiCall] = []
        self.files: dict[str, int] = {}  # file_id -> uploaded size
        self.file_digests: dict[str, str] = {}  # file_id -> sha256 of the uploaded bytes
        self.uploads = 0
        self.expired_queries: set[str] = set()  # answerCallbackQuery says "too old"
        self.failing_photos = 0  # this many next sendPhoto calls get 502 Bad Gateway
        self.faults: dict[str, deque[tuple[Fault, int | None]]] = {}
        self.get_updates_calls = 0
        self.fetched: set[int] = set()  # update_ids getUpdates has returned
        self.first_names: dict[int, str] = {}  # user id -> first name (default Player<id>)
        self.webhook_url = ""  # what getWebhookInfo reports (a webhook set elsewhere)
        self._state = _State()
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> FakeBotApi:
        """Bind and serve; :attr:`port` is the bound port afterwards."""
        self._closing = False
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_post("/_control/updates", self._control_inject)
        app.router.add_get("/_control/calls", self._control_calls)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop serving; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._closing = True
            async with self._changed:
                self._changed.notify_all()  # long polls return now, not at their timeout
            await runner.cleanup()

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The value for ``TELEGRAM_API_BASE_URL``."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def file_base_url(self) -> str:
        """The value for ``TELEGRAM_FILE_BASE_URL``."""
        return f"http://{self.host}:{self.port}/file/bot"

    # -- injecting updates ----------------------------------------------------------------
    async def inject(self, update: Mapping[str, Any], *, force: bool = False) -> int:
        """Queue an update for getUpdates; returns its update_id. ``force``: deliver it even
        when its type is not in the bot's ``allowed_updates``."""
        update_id = next(self._update_ids)
        body = {**update, "update_id": update_id}
        async with self._changed:
            self._state.updates.append(body)
            self._state.injected_at[update_id] = time.monotonic()
            if force:
                self._state.forced.add(update_id)
            self._changed.notify_all()
        return update_id

    def fail(
        self, method: str, fault: Fault, *, times: int = 1, chat_id: int | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` (in ``chat_id`` only, when given) get
        ``fault``."""
        queue = self.faults.setdefault(method, deque())
        queue.extend([(fault, chat_id)] * times)

    def _take_fault(self, method: str, params: Mapping[str, Any]) -> Fault | None:
        queue = self.faults.get(method)
        if not queue:
            return None
        chat = params.get("chat_id")
        for index, (fault, chat_id) in enumerate(queue):
            if chat_id is None or str(chat_id) == str(chat):
                del queue[index]
                return fault
        return None

    @property
    def allowed_updates(self) -> list[str] | None:
        """The ``allowed_updates`` of the bot's last getUpdates that named them."""
        return self._state.allowed_updates

    def _user(
        self, user_id: int, language: str | None, first_name: str | None = None
    ) -> dict[str, Any]:
        name = (
            first_name
            if first_name is not None
            else self.first_names.get(user_id, f"Player{user_id}")
        )
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": name}
        if language:
            user["language_code"] = language
        return user

    async def send_group_message(
        self,
        chat_id: int,
        text: str | None,
        *,
        user_id: int,
        language: str | None = "en",
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """A member ``user_id`` writes ``text`` in the group ``chat_id`` (a negative id)."""
        return await self.send_message(
            chat_id, text, user_id=user_id, language=language,
            extra={"chat": _chat(chat_id), **(extra or {})},
        )  # fmt: skip

    async def send_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user_id: int | None = None,
        language: str | None = "en",
        extra: Mapping[str, Any] | None = None,
        first_name: str | None = None,
    ) -> int:
        """A user writes ``text`` (or sends ``extra``, e.g. a sticker) in a private chat."""
        user = self._user(user_id or chat_id, language, first_name)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": user["first_name"]},
            "from": user,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        message.update(extra or {})
        return await self.inject({"message": message})

    async def press(
        self,
        chat_id: int,
        data: str,
        *,
        message: Mapping[str, Any] | None = None,
        user_id: int | None = None,
        language: str | None = "en",
        query_id: str | None = None,
        inline: bool = False,
    ) -> int:
        """A user taps an inline button with ``data`` under ``message`` (the last bot message
        with a keyboard in this chat when not given). ``inline``: the button is under an
        inline message, so the query has an ``inline_message_id`` and no message or chat."""
        if inline:
            query = {
                "id": query_id or f"cq{next(self._update_ids)}",
                "from": self._user(user_id or chat_id, language),
                "chat_instance": f"ci{chat_id}",
                "data": data,
                "inline_message_id": f"im{chat_id}",
            }
            return await self.inject({"callback_query": query})
        if message is None:
            message = self.last_keyboard_message(chat_id)
        if message is None:
            message = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": _chat(chat_id),
                "text": "old message",
            }
        query = {
            "id": query_id or f"cq{next(self._update_ids)}",
            "from": self._user(user_id or chat_id, language),
            "chat_instance": f"ci{chat_id}",
            "data": data,
            "message": dict(message),
        }
        return await self.inject({"callback_query": query})

    # -- reading what the bot did ---------------------------------------------------------------
    def replies(self, chat_id: int, since: int = 0) -> list[ApiCall]:
        """Calls that answer in ``chat_id`` (messages, photos, edits), from index ``since``."""
        return [call for call in self.calls[since:] if is_reply(call) and call.chat_id == chat_id]

    def last_keyboard_message(self, chat_id: int) -> dict[str, Any] | None:
        """The newest message in ``chat_id`` that carries an inline keyboard."""
        for (chat, _mid), message in sorted(self._messages.items(), key=lambda i: -i[0][1]):
            if chat == chat_id and message.get("reply_markup"):
                return message
        return None

    @staticmethod
    def buttons(call_or_message: ApiCall | Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(text, callback_data)`` of every inline button of a call or message."""
        if isinstance(call_or_message, ApiCall):
            markup = call_or_message.params.get("reply_markup")
        else:
            markup = call_or_message.get("reply_markup")
        if not isinstance(markup, dict):
            return []
        return [
            (button.get("text", ""), button.get("callback_data", ""))
            for row in markup.get("inline_keyboard", [])
            for button in row
        ]

    async def wait_for(
        self, predicate: Callable[[ApiCall], bool], *, since: int = 0, timeout: float = PATIENCE
    ) -> ApiCall:
        """The first call from index ``since`` that satisfies ``predicate``."""
        async with self._changed:
            deadline = time.monotonic() + timeout
            while True:
                for call in self.calls[since:]:
                    if predicate(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self.calls[since:]]
                    raise TimeoutError(f"no matching Bot API call within {timeout}s: {methods}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def act(
        self,
        chat_id: int,
        action: str,
        value: str,
        *,
        language: str = "en",
        timeout: float = PATIENCE,
    ) -> ApiCall:
        """One player step: ``say`` a message or ``tap`` a button; return the bot's reply."""
        since = len(self.calls)
        if action == "say":
            await self.send_message(chat_id, value, language=language)
        else:
            await self.press(chat_id, value, language=language)
        return await self.wait_reply(chat_id, since=since, timeout=timeout)

    async def wait_reply(self, chat_id: int, *, since: int, timeout: float = PATIENCE) -> ApiCall:
        """The first message, photo or edit in ``chat_id`` from index ``since`` (see
        :func:`is_reply`)."""
        return await self.wait_for(
            lambda call: is_reply(call) and call.chat_id == chat_id, since=since, timeout=timeout
        )

    def photo_digest(self, call: ApiCall) -> str | None:
        """sha256 of the image a sendPhoto call showed, whether uploaded or sent by file id."""
        if call.method != "sendPhoto" or not isinstance(call.result, dict):
            return None
        photos = call.result.get("photo") or []
        return self.file_digests.get(photos[-1]["file_id"]) if photos else None

    def consumed(self, update_id: int) -> bool:
        """True when the bot confirmed ``update_id`` through a later getUpdates offset."""
        return self._state.confirmed_offset > update_id

    # -- the HTTP side ---------------------------------------------------------------------
    @staticmethod
    async def _params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            body = await request.json() if request.can_read_body else {}
            params.update(body or {})
            return params, files
        if request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = value
                else:
                    files[key] = value.file.read()
                    params[key] = f"attach://{key}"
        for key in list(params):
            value = params[key]
            if key in _JSON_FIELDS and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        return params, files

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if token in self.bad_tokens:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params, files = await self._params(request)
        handler = getattr(self, f"_api_{method}", None)
        call = ApiCall(method, params, time.monotonic(), token=token)
        fault = self._take_fault(method, params)
        if fault is not None and not fault.deliver:
            description = "Too Many Requests" if fault.status == 429 else "Injected fault"
            body: dict[str, Any] = {"ok": False, "error_code": fault.status,
                                    "description": description}  # fmt: skip
            if fault.retry_after is not None:
                body["parameters"] = {"retry_after": fault.retry_after}
                body["description"] += f": retry after {fault.retry_after}"
            call.status, call.delivered = fault.status, False
            await self._record(call)
            return web.json_response(body, status=fault.status)
        if handler is None:
            result: Any = True
        else:
            try:
                result = await handler(params, files)
            except _ApiError as error:
                call.status, call.delivered = error.code, False
                call.result = error.description
                await self._record(call)
                return web.json_response(
                    {"ok": False, "error_code": error.code, "description": error.description},
                    status=error.code,
                )
        call.result = result
        await self._record(call)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.garbled:
                return web.Response(
                    body=b'{"ok": true, "result": {"message_id": 1, "ch',
                    content_type="application/json",
                )
        return web.json_response({"ok": True, "result": result})

    async def _record(self, call: ApiCall) -> None:
        if call.method == "getUpdates":
            self.get_updates_calls += 1
            return
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    # -- Bot API methods -----------------------------------------------------------------
    async def _api_getMe(self, _p: dict[str, Any], _f: dict[str, bytes]) -> dict[str, Any]:  # noqa: N802
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Vechnost",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_getWebhookInfo(  # noqa: N802
        self, _p: dict[str, Any], _f: dict[str, bytes]
    ) -> dict[str, Any]:
        pending = len(self._state.updates)
        return {"url": self.webhook_url, "pending_update_count": pending}

    async def _api_getUpdates(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + min(timeout, 30.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list) and allowed:
            self._state.allowed_updates = [str(kind) for kind in allowed]
        async with self._changed:
            if offset:
                self._state.confirmed_offset = max(self._state.confirmed_offset, offset)
                self._state.updates = [u for u in self._state.updates if u["update_id"] >= offset]
            while True:
                pending = [u for u in self._state.updates if self._wanted(u)][:limit]
                left = deadline - time.monotonic()
                if pending or left <= 0 or self._closing:
                    self.fetched.update(u["update_id"] for u in pending)
                    return pending
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    def _wanted(self, update: Mapping[str, Any]) -> bool:
        """Telegram sends only the allowed update types (all, before any were named)."""
        allowed = self._state.allowed_updates
        if allowed is None or update["update_id"] in self._state.forced:
            return True
        return any(kind in update for kind in allowed)

    def _new_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Vechnost"},
            **content,
        }
        if isinstance(params.get("reply_markup"), dict):
            message["reply_markup"] = params["reply_markup"]
        self._messages[(chat_id, message["message_id"])] = message
        return message

    async def _api_sendMessage(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> dict[str, Any]:
        text = str(params.get("text", ""))
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._new_message(params, text=text)

    def _photo(self, value: Any, files: dict[str, bytes]) -> list[dict[str, Any]]:
        if isinstance(value, str) and value.startswith("attach://"):
            data = files.get(value.removeprefix("attach://"))
            if not data:
                raise _ApiError(400, "Bad Request: file must be non-empty")
            self.uploads += 1
            number = next(self._file_ids)
            file_id = f"AgACAgFake{number:06d}"
            self.files[file_id] = len(data)
            self.file_digests[file_id] = hashlib.sha256(data).hexdigest()
            return [
                {"file_id": f"{file_id}_s", "file_unique_id": f"u{number}s", "width": 90,
                 "height": 112, "file_size": len(data) // 10},
                {"file_id": file_id, "file_unique_id": f"u{number}", "width": 900,
                 "height": 1125, "file_size": len(data)},
            ]  # fmt: skip
        if isinstance(value, str) and value in self.files:
            return [{"file_id": value, "file_unique_id": f"u{value}", "width": 900,
                     "height": 1125, "file_size": self.files[value]}]  # fmt: skip
        raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    async def _api_sendPhoto(  # noqa: N802
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> dict[str, Any]:
        if self.failing_photos > 0:
            self.failing_photos -= 1
            raise _ApiError(502, "Bad Gateway")
        photo = self._photo(params.get("photo"), files)
        content: dict[str, Any] = {"photo": photo}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._new_message(params, **content)

    def _existing(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            key = (int(params["chat_id"]), int(params["message_id"]))
        except (KeyError, TypeError, ValueError):
            raise _ApiError(400, "Bad Request: message identifier is not specified") from None
        message = self._messages.get(key)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _edited(self, message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if isinstance(params.get("reply_markup"), dict):
            message["reply_markup"] = params["reply_markup"]
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return dict(message)

    async def _api_editMessageText(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> dict[str, Any]:
        message = self._existing(params)
        if "text" not in message:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        text = str(params.get("text", ""))
        if text == message["text"] and params.get("reply_markup") == message.get("reply_markup"):
            raise _ApiError(400, "Bad Request: message is not modified")
        message["text"] = text
        return self._edited(message, params)

    async def _api_editMessageCaption(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> dict[str, Any]:
        message = self._existing(params)
        message["caption"] = str(params.get("caption", ""))
        return self._edited(message, params)

    async def _api_editMessageReplyMarkup(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> dict[str, Any]:
        return self._edited(self._existing(params), params)

    async def _api_editMessageMedia(  # noqa: N802
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> dict[str, Any]:
        message = self._existing(params)
        media = params.get("media")
        if not isinstance(media, dict):
            raise _ApiError(400, "Bad Request: can't parse input media")
        message.pop("text", None)
        message["photo"] = self._photo(media.get("media"), files)
        if media.get("caption"):
            message["caption"] = media["caption"]
        return self._edited(message, params)

    async def _api_answerCallbackQuery(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> bool:
        if params.get("callback_query_id") in self.expired_queries:
            raise _ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query id is invalid",
            )
        return True

    async def _api_getMyCommands(  # noqa: N802
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> list[Any]:
        language = params.get("language_code", "")
        for call in reversed(self.calls):
            if call.method == "setMyCommands" and call.params.get("language_code", "") == language:
                commands: list[Any] = call.params.get("commands", [])
                return commands
        return []

    # -- control endpoints (process mode) ---------------------------------------------------
    async def _control_inject(self, request: web.Request) -> web.Response:
        update_id = await self.inject(await request.json())
        return web.json_response({"update_id": update_id})

    async def _control_calls(self, _request: web.Request) -> web.Response:
        return web.json_response(
            [{"method": c.method, "params": c.params, "result": c.result} for c in self.calls]
        )


def is_reply(call: ApiCall) -> bool:
    """A message, photo or edit the bot shows; removing an old card's keyboard is tidying
    up, not a reply."""
    if not call.delivered:
        return False  # refused (a fault or an error): the player saw nothing
    if call.method == "editMessageReplyMarkup" and not call.params.get("reply_markup"):
        return False
    return call.method in REPLY_METHODS - {"answerCallbackQuery"}


def _chat(chat_id: int) -> dict[str, Any]:
    """A chat as Telegram describes it: positive ids are private chats, negative groups."""
    if chat_id < 0:
        return {"id": chat_id, "type": "group", "title": f"Group{-chat_id}"}
    return {"id": chat_id, "type": "private"}


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


async def _serve(port: int, host: str, bad_tokens: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeBotApi(host=host, port=port, bad_tokens=bad_tokens) as api:
        print(f"fake Bot API listening on {api.base_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the fake Bot API until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server for tests.")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bad-token", action="append", default=[], help="answer 401 for it")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.host, args.bad_token))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
