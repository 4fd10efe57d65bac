"""The core as the adapters see it: :class:`Assistant` implements :class:`core.contract.Core`.

A submitted message takes its chat's place in line at once (:mod:`core.lines`); when its turn
comes it runs through the pipeline (:mod:`core.stages`), and the events go to its
:class:`~core.reply.Reply`. ``/cancel`` is answered out of line, so it can stop an answer that is
being generated. Failures become one sentence for the person and a traceback for the operator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from core import outbox
from core.access import AccessControl
from core.admission import Admission
from core.answering import Answerer
from core.catalogue import Catalogue, ModelInfo
from core.commands import parse_command
from core.conversations import Conversations
from core.i18n import Texts
from core.intake import DuplicateMessage, Receipt
from core.lines import ChatLines
from core.llm import ModelClient
from core.metrics import Metrics
from core.preferences import Preferences, command_menu, menu_languages
from core.recovery import RETRY_DELIVERY, Intake
from core.registry import Registry
from core.reply import Reply, ready_reply
from core.services import Services
from core.settings import Settings
from core.stages import Pipeline
from core.store.base import Store, StoreError
from core.types import AdminAlert, ChatKey, Incoming, Notice, ReplyEvent
from core.window import resolve_model

log = logging.getLogger(__name__)

Feature = Callable[[Registry, Services], object]
"""A feature's ``register(registry, services)``: it plugs its commands and hooks in."""


class Assistant:
    """Ferry's conversation core. Adapters :meth:`submit` messages and render the replies.

    ``features`` are registered after the built-in commands; the composition root
    (:mod:`core.app`) passes the standard ones. ``delivery_retry``: seconds before an answer whose
    reply was closed undelivered is handed over again by :meth:`pending`.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        model: ModelClient,
        *,
        catalogue: Catalogue | None = None,
        texts: Texts | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        features: Iterable[Feature] = (),
        delivery_retry: float = RETRY_DELIVERY,
    ) -> None:
        self.settings = settings
        self.store = store
        self.model = model
        self.catalogue = catalogue or Catalogue.load(settings.config_dir / "models.toml")
        self.texts = texts or Texts.load(settings.config_dir / "locales")
        self.clock = clock
        self._metrics = metrics or Metrics()
        self.access = AccessControl(settings, store, clock)
        self.services = Services(settings, store, self.texts, self.catalogue, self.access, clock)
        self.registry = Registry()
        self._cancels: dict[str, asyncio.Event] = {}
        self._lines = ChatLines()
        self._window_questions: list[asyncio.Task[ModelInfo]] = []
        self._intake = Intake(
            store, self._lines, self._received, clock, retry=delivery_retry, cancel=self._cancel_here,
            data_dir=settings.data_dir,
        )
        answerer = Answerer(
            self.services, model, self._metrics, self.registry, self._cancels, self._intake.undelivered
        )
        conversations = Conversations(self.services, answerer)
        admission = Admission(self.services)
        for builtin in (conversations, admission, Preferences(self.services)):
            builtin.register(self.registry)
        for feature in features:
            feature(self.registry, self.services)
        self._pipeline = Pipeline(self.services, self.registry, admission, conversations)

    @property
    def metrics(self) -> Metrics:
        """Counters and histograms the process serves on ``/metrics``."""
        return self._metrics

    async def start(self) -> None:
        """Open the store and make sure someone can become admin; ask the model server, meanwhile,
        the windows of the models the catalogue does not know."""
        await self.store.open()
        await self.access.ensure_claim_code()
        self._window_questions = self._ask_windows()

    def _ask_windows(self) -> list[asyncio.Task[ModelInfo]]:
        """The first message after a start need not wait for ``/v1/models`` and ``/props`` (two
        round trips to a hosted provider, 0.1 s to a local server; every chat of a burst waited
        for them): asked now, beside the start, for the default model and the choices (core/window.py).
        """
        names = dict.fromkeys((self.settings.model, *self.settings.model_choices))
        setting = self.settings.context_window  # resolve_model asks nothing when it is set or the model known
        return [asyncio.create_task(resolve_model(self.catalogue.get(n), self.model, setting)) for n in names]

    async def close(self) -> None:
        """Stop the answers in progress, then close the store and the model client."""
        self._intake.close()
        for question in self._window_questions:
            question.cancel()
        for event in self._cancels.values():
            event.set()
        await self._lines.close()
        await self._intake.aclose()
        await self.store.close()
        aclose = getattr(self.model, "aclose", None)
        if aclose is not None:
            await aclose()

    async def ready(self) -> str | None:
        """``None`` when the store answers, else why the core cannot answer."""
        try:
            await self.store.get_meta("schema_version")
        except Exception as e:
            return f"the store does not open: {e}"
        return None

    # --- what adapters use besides submit ---------------------------------------------------

    def text(self, lang: str, key: str, **values: Any) -> str:
        """One of the bot's texts, for the few an adapter must show itself."""
        return self.texts.get(lang, key, **values)

    def language(self, language_code: str | None) -> str:
        """The bot language for a messenger's language code."""
        return self.texts.pick_language(language_code, self.settings.default_lang)

    def command_menu(self, lang: str) -> list[tuple[str, str]]:
        """(command, description) pairs for a messenger's command menu."""
        return command_menu(self.texts, lang)

    def menu_languages(self) -> tuple[str, ...]:
        """Every language with a texts file; a messenger registers a command menu for each."""
        return menu_languages(self.texts)

    async def alerts(self, platform: str, interval: float = 2.0) -> AsyncIterator[AdminAlert]:
        """Alerts the other messenger's process left for this one's people, as they come."""
        while True:
            try:
                for alert in await outbox.collect(self.store, platform, self.clock):
                    yield alert
            except StoreError as e:
                log.warning("could not read the alert outbox: %s", e)
            await asyncio.sleep(interval)

    async def move_chat(self, old: ChatKey, new: ChatKey) -> int:
        """A group chat got a new id: its conversations move to the new one (once; again moves none)."""
        moved = await self.store.move_conversations(f"group:{old}", f"group:{new}")
        if moved:
            log.info("chat %s is now %s: moved %d conversations", old, new, moved)
        return moved

    # --- the entry --------------------------------------------------------------------------

    def submit(self, msg: Incoming) -> Reply:
        """Take the message's place in its chat's line now; its answer is read from the reply."""
        if msg.chat.is_group and not msg.addressed and msg.callback is None:
            return ready_reply()
        command = parse_command(msg.text) if msg.callback is None else None
        if command is not None and command.name == "cancel":
            if self._cancel_here(str(msg.chat)):
                return ready_reply()
            return self._lines.aside(lambda: self._guarded(msg, self._nothing_to_cancel(msg)))
        return self._lines.join(str(msg.chat), lambda: self._guarded(msg, self._pipeline(msg, command)))

    async def receive(self, msg: Incoming, key: str, route: Mapping[str, Any] | None = None) -> Reply | None:
        """Put the message in line and record it durably (see :meth:`core.contract.Core.receive`)."""
        if msg.chat.is_group and not msg.addressed and msg.callback is None:
            return ready_reply()  # nothing to answer, nothing to record
        command = parse_command(msg.text) if msg.callback is None else None
        if command is not None and command.name == "cancel":
            if self._cancel_here(str(msg.chat)) or await self._intake.cancel_elsewhere(str(msg.chat)):
                return ready_reply()  # the answer being written (here or by another replica) stops
            return self.submit(msg)  # out of line, and meaningless after a restart
        return await self._intake.receive(msg, key, dict(route) if route is not None else None)

    def _cancel_here(self, chat: str) -> bool:
        """Stop the chat's answer being written in this process; False when there is none."""
        running = self._cancels.get(chat)
        if running is None or running.is_set():
            return False
        running.set()  # the running answer ends itself with its "cut off" text
        return True

    def pending(self, platform: str) -> AsyncIterator[Reply]:
        """Answers to deliver that no ``receive`` returned (see :meth:`core.contract.Core.pending`)."""
        return self._intake.pending(platform)

    def _received(self, msg: Incoming, receipt: Receipt) -> AsyncIterator[ReplyEvent]:
        command = parse_command(msg.text) if msg.callback is None else None
        return self._guarded(msg, self._pipeline(msg, command, receipt))

    async def handle(self, msg: Incoming) -> AsyncIterator[ReplyEvent]:
        """Handle one message and yield what to send back, in order (:meth:`submit`, then read)."""
        async with self.submit(msg) as reply:
            async for event in reply:
                yield event

    async def _nothing_to_cancel(self, msg: Incoming) -> AsyncIterator[ReplyEvent]:
        user = await self.store.find_user(str(msg.sender))
        lang = self.texts.pick_language(user.lang if user else None, msg.language_code)
        yield self.services.notice(lang, "chat.cancel_nothing")

    async def _guarded(self, msg: Incoming, events: AsyncIterator[ReplyEvent]) -> AsyncIterator[ReplyEvent]:
        """Turn failures into one sentence for the person and a traceback for the operator."""
        platform = msg.chat.platform
        try:
            async for event in events:
                if isinstance(event, AdminAlert):
                    mine, elsewhere = outbox.split(event, platform)
                    for other, alert in elsewhere.items():
                        await outbox.post(self.store, other, alert, self.clock())
                    if mine is None:
                        continue
                    event = mine
                yield event
            self._metrics.messages.labels(platform, "ok").inc()
        except DuplicateMessage:
            raise  # received before: nobody reads this reply
        except StoreError as e:
            self._metrics.messages.labels(platform, "error").inc()
            self._metrics.errors.labels("store").inc()
            log.error("store failed while handling a message from %s: %s", msg.sender, e)
            yield self._failure(msg, "error.store")
        except Exception:
            self._metrics.messages.labels(platform, "error").inc()
            self._metrics.errors.labels("internal").inc()
            log.exception("unexpected error while handling a message from %s", msg.sender)
            yield self._failure(msg, "error.internal")

    def _failure(self, msg: Incoming, key: str) -> Notice:
        return Notice(self.texts.get(self.language(msg.language_code), key), is_error=True)
