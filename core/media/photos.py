"""Photos: sent to the model as image parts when the chosen model can see.

The caption is the question; a photo without one is kept in the conversation and the person's
next text asks about it (consecutive messages of a person form one turn). An album (several
photos in one message) is one turn. A model without vision says so in one sentence and points to
``/model``; a broken image or a decompression bomb gets its own sentence; nothing is stored then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator

from core.media import images
from core.media.feature import MediaFeature
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.store.base import ConversationRecord, MessageRecord
from core.types import Attachment, ReplyEvent

log = logging.getLogger(__name__)


class Photos(MediaFeature):
    """The photo reader."""

    def register(self) -> None:
        """Plug the reader in."""
        self._registry.add_attachment_reader(self.read)

    def model_name(self, request: Request) -> str:
        """The model that will answer (the person's choice while it is offered, else the default)."""
        settings, user = self._s.settings, request.user
        return user.model if user.model in settings.model_choices else settings.model

    async def read(self, request: Request) -> AsyncIterator[ReplyEvent | Request]:
        """The message's photos as links the answer turns into image parts; nothing without photos."""
        photos = [a for a in request.msg.attachments if a.kind == "photo"]
        if not photos:
            return
        lang = request.lang
        over = next((a for a in photos if a.over_limit is not None), None)
        if over is not None:
            yield self.too_large(lang, over)
            return
        loaded = [a for a in photos if a.fetched]
        if not loaded:
            return  # not fetched: the input stage answers
        model = self.model_name(request)
        if not self._s.catalogue.get(model).vision:
            yield self._s.notice(lang, "media.cannot_see", model=model)
            return
        try:
            prepared = [await asyncio.to_thread(_prepared, a) for a in loaded]
        except images.BadImage as exc:
            log.info("image from %s refused: %s", request.msg.sender, exc.reason)
            yield self._s.notice(lang, f"media.image_{exc.reason}")
            return
        await request.recorded()  # saved for the conversation: once the message is surely new
        data_dir = self._s.settings.data_dir
        links = [await asyncio.to_thread(images.save, data_dir, request.scope, jpeg) for jpeg in prepared]
        if not request.text:
            await keep_unanswered(self._s, request, "\n".join(links))
            yield self._s.notice(lang, "media.photo_kept", count=len(links))
            return
        yield dataclasses.replace(request, text=f"{request.text}\n\n" + "\n".join(links))


def _prepared(photo: Attachment) -> bytes:
    """A photo ready to send (read from its spool file if spooled); in a worker thread."""
    return images.prepare(photo.read())


async def keep_unanswered(services: Services, request: Request, content: str) -> None:
    """Store a message without a question (photos, a document) in the active conversation,
    unanswered: the person's next text asks about it (consecutive messages form one turn)."""
    await request.recorded()
    store, now = services.store, services.clock()
    current = await store.list_conversations(request.scope, 1)
    conv = current[0] if current else ConversationRecord(uuid.uuid4().hex[:16], request.scope, created_at=now)
    if not current:
        await store.put_conversation(dataclasses.replace(conv, updated_at=now))
    if request.msg.chat.is_group:
        content = f"{request.msg.sender_name or request.msg.sender}: {content}"
    record = MessageRecord(uuid.uuid4().hex, conv.id, "user", content, now, author=str(request.msg.sender))
    await store.append_messages([record])


def register(registry: Registry, services: Services) -> None:
    """The photo feature."""
    Photos(registry, services).register()
