"""Who gets in: the refusals of the access stage, /claim, and the admins' /approve and /deny."""

from __future__ import annotations

from collections.abc import AsyncIterator

from core.registry import Registry
from core.request import Request
from core.services import Services
from core.types import AdminAlert, Button, ReplyEvent


def _anyone(request: Request) -> bool:
    return True


class Admission:
    """Access requests and the decisions on them."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def register(self, registry: Registry) -> None:
        """Plug /claim (open to everyone), /approve, /deny and the request's buttons in."""
        registry.add_command("claim", self.claim, before_approval=_anyone)
        registry.add_command("approve", self.approve)
        registry.add_command("deny", self.deny)
        registry.add_callback("acc", self.button)

    async def refuse(self, request: Request) -> AsyncIterator[ReplyEvent]:
        """Tell a person without access why; a newcomer's first message asks the admins."""
        user, lang = request.user, request.lang
        if user.status == "blocked":
            yield self._s.notice(lang, "access.blocked")
        elif user.status == "denied" or self._s.settings.access == "allowlist":
            yield self._s.notice(lang, "access.denied")
        elif request.is_new:
            yield self._s.notice(lang, "access.asked_admin")
            admins = await self._s.access.admin_identities()
            if admins:
                yield self._request_alert(request, admins)
        else:
            yield self._s.notice(lang, "access.still_pending")

    def _request_alert(self, request: Request, admins: tuple[str, ...]) -> AdminAlert:
        lang, texts, user = self._s.settings.default_lang, self._s.texts, request.user
        text = texts.get(
            lang,
            "access.request",
            name=user.display_name or request.identities[0],
            identity=", ".join(request.identities),
        )
        buttons = (
            Button(texts.get(lang, "access.approve_button"), f"acc:approve:{user.id}"),
            Button(texts.get(lang, "access.deny_button"), f"acc:deny:{user.id}"),
        )
        return AdminAlert(to=admins, text=text, buttons=(buttons,))

    async def claim(self, request: Request, code: str) -> AsyncIterator[ReplyEvent]:
        """/claim CODE: the first admin proves they can read the log."""
        yield self._s.notice(request.lang, f"access.claim_{await self._s.access.claim(request.user, code)}")

    async def approve(self, request: Request, who: str) -> AsyncIterator[ReplyEvent]:
        """/approve <user>: let them in."""
        async for event in self._decide(request, "approve", who):
            yield event

    async def deny(self, request: Request, who: str) -> AsyncIterator[ReplyEvent]:
        """/deny <user>: keep them out."""
        async for event in self._decide(request, "deny", who):
            yield event

    async def button(self, request: Request, value: str) -> AsyncIterator[ReplyEvent]:
        """The approve/deny buttons of an access request."""
        decision, _, who = value.partition(":")
        async for event in self._decide(request, decision, who):
            yield event

    async def _decide(self, request: Request, decision: str, who: str) -> AsyncIterator[ReplyEvent]:
        lang = request.lang
        if not request.admin:
            yield self._s.notice(lang, "access.admins_only")
            return
        if not who.strip():
            yield self._s.notice(lang, "access.usage_approve")
            return
        target = await self._s.access.find_user(who)
        if target is None:
            yield self._s.notice(lang, "access.no_such_user", who=who)
            return
        approve = decision == "approve"
        target = await self._s.access.set_status(target, "approved" if approve else "denied")
        name = target.display_name or (target.identities[0] if target.identities else target.id)
        yield self._s.notice(lang, "access.approved" if approve else "access.denied_admin", name=name)
        target_lang = self._s.texts.pick_language(target.lang, self._s.settings.default_lang)
        yield AdminAlert(
            to=target.identities,
            text=self._s.texts.get(target_lang, "access.approved_user" if approve else "access.denied_user"),
        )
