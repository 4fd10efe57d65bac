"""The person's own settings (/model, /instructions, /lang) and the greeting commands (/start, /help)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from core.commands import MENU
from core.i18n import Texts
from core.registry import Registry
from core.request import Request
from core.services import Services
from core.text import clean_text
from core.types import Button, Notice, ReplyEvent

INSTRUCTIONS_LIMIT = 2000


def command_menu(texts: Texts, lang: str) -> list[tuple[str, str]]:
    """(command, description) pairs for a messenger's command menu and /help."""
    languages = ", ".join(texts.get(code, "lang.name") for code in texts.languages)
    return [(name, texts.get(lang, f"cmd.{name}", languages=languages)) for name in MENU]


def menu_languages(texts: Texts) -> tuple[str, ...]:
    """Every language with a texts file; a messenger registers a command menu for each."""
    return texts.languages


class Preferences:
    """Commands that change how the bot answers one person."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def register(self, registry: Registry) -> None:
        """Plug /start, /help, /model, /instructions, /lang and their buttons in."""
        for command in (self.start, self.help, self.model, self.instructions, self.lang):
            registry.add_command(command.__name__, command)
        for button in (self.model, self.lang):
            registry.add_callback(button.__name__, button)

    async def start(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/start: the greeting."""
        yield self._s.notice(request.lang, "start.welcome", name=request.user.display_name or "")

    async def help(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/help: every menu command with its description."""
        texts, lang = self._s.texts, request.lang
        lines = [texts.get(lang, "help.header"), ""]
        for name, description in command_menu(texts, lang):
            lines.append(texts.get(lang, "help.line", command=name, description=description))
        lines += ["", texts.get(lang, "help.footer")]
        yield Notice("\n".join(lines))

    async def model(self, request: Request, wanted: str) -> AsyncIterator[ReplyEvent]:
        """/model (or its buttons): show the offered models, or pick one."""
        choices = self._s.settings.model_choices
        user, lang = request.user, request.lang
        current = user.model if user.model in choices else self._s.settings.model
        if not wanted:
            yield self._model_list(lang, current)
        elif wanted not in choices:
            yield self._s.notice(lang, "model.unknown", model=wanted, choices=", ".join(choices))
        else:
            await self._s.store.put_user(dataclasses.replace(user, model=wanted))
            yield self._s.notice(lang, "model.set", model=wanted)

    def _model_list(self, lang: str, current: str) -> Notice:
        texts, choices = self._s.texts, self._s.settings.model_choices
        lines = [texts.get(lang, "model.current", model=current), ""]
        for name in choices:
            info = self._s.catalogue.get(name)
            line = texts.get(
                lang,
                "model.info",
                model=name,
                context=info.context_window,
                input=info.input_price,
                output=info.output_price,
            )
            lines.append("• " + line)
        buttons = tuple((Button(("✓ " if n == current else "") + n, f"model:{n}"),) for n in choices)
        return Notice("\n".join(lines), buttons=buttons)

    async def instructions(self, request: Request, args: str) -> AsyncIterator[ReplyEvent]:
        """/instructions: show, set or clear the person's own instructions to the model."""
        user, lang = request.user, request.lang
        if not args:
            if not user.instructions:
                yield self._s.notice(lang, "instructions.none")
            else:
                yield self._s.notice(lang, "instructions.show", text=user.instructions)
            return
        if args.lower() in self._s.texts.all_words("instructions.clear_words"):
            await self._s.store.put_user(dataclasses.replace(user, instructions=None))
            yield self._s.notice(lang, "instructions.cleared")
            return
        text = clean_text(args)
        if len(text) > INSTRUCTIONS_LIMIT:
            yield self._s.notice(lang, "instructions.too_long", limit=INSTRUCTIONS_LIMIT)
            return
        await self._s.store.put_user(dataclasses.replace(user, instructions=text))
        yield self._s.notice(lang, "instructions.set")

    async def lang(self, request: Request, wanted: str) -> AsyncIterator[ReplyEvent]:
        """/lang (or its buttons): offer the languages, or switch to one."""
        languages = self._s.texts.languages
        if not wanted:
            buttons = (tuple(Button(self._s.texts.get(code, "lang.name"), f"lang:{code}") for code in languages),)
            yield Notice(self._s.texts.get(request.lang, "lang.choose"), buttons=buttons)
            return
        code = wanted.strip().lower()
        if code not in languages:
            yield self._s.notice(request.lang, "lang.unknown", choices=", ".join(languages))
            return
        await self._s.store.put_user(dataclasses.replace(request.user, lang=code))
        yield self._s.notice(code, "lang.set")
