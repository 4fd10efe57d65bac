"""``ferry chat``: the assistant in the terminal, for trying it out and for admins.

The person at the terminal can read the data folder anyway, so they are an admin here.
Answers stream as they are generated; Ctrl+C stops an answer, Ctrl+D (or /quit) leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import os
import signal
import sys
from typing import TextIO

from core.app import build_assistant
from core.assistant import Assistant
from core.settings import Settings
from core.types import (
    AdminAlert,
    Button,
    ChatKey,
    FileReply,
    FinalText,
    Identity,
    Incoming,
    Notice,
    PartialAnswer,
    Progress,
    StreamStart,
)


class Console:
    """Reads lines, sends them through the core, prints the reply events."""

    def __init__(self, assistant: Assistant, out: TextIO = sys.stdout, user: str | None = None) -> None:
        self.assistant = assistant
        self.out = out
        name = user or getpass.getuser()
        self.identity = Identity("console", name)
        self.chat = ChatKey("console", name)
        self._choices: list[Button] = []
        self._running: asyncio.Task[None] | None = None

    def incoming(self, line: str) -> Incoming:
        """The core's value for a typed line; a bare number picks an offered button."""
        stripped = line.strip()
        if stripped.isdigit() and 1 <= int(stripped) <= len(self._choices):
            data = self._choices[int(stripped) - 1].data
            return Incoming(self.identity, self.chat, "", sender_name=self.identity.id, callback=data,
                            language_code=os.environ.get("LANG"))
        return Incoming(self.identity, self.chat, line, sender_name=self.identity.id,
                        language_code=os.environ.get("LANG"))

    async def send(self, line: str) -> None:
        """Handle one typed line and print everything the core answers."""
        shown = 0
        async for event in self.assistant.handle(self.incoming(line)):
            if isinstance(event, StreamStart):
                shown = 0
            elif isinstance(event, PartialAnswer):
                self.out.write(event.text[shown:])
                self.out.flush()
                shown = len(event.text)
            elif isinstance(event, FinalText):
                if event.streamed:  # the final text extends what was streamed (a cut-off mark at most)
                    self.out.write(event.text[shown:] + "\n\n")
                else:
                    self.out.write(event.text + "\n\n")
                self._show_buttons(event.buttons)
            elif isinstance(event, Notice):
                self.out.write(event.text + "\n\n")
                self._show_buttons(event.buttons)
            elif isinstance(event, FileReply):
                self.out.write(f"[file {event.filename}, {len(event.data)} bytes]\n\n")
            elif isinstance(event, Progress):
                self.out.write(f"{event.text}\n")
            elif isinstance(event, AdminAlert):
                for_me = str(self.identity) in event.to
                if for_me:
                    self.out.write(event.text + "\n\n")
                    self._show_buttons(event.buttons)
            self.out.flush()

    def _show_buttons(self, rows: tuple[tuple[Button, ...], ...]) -> None:
        buttons = [b for row in rows for b in row]
        if buttons:
            self._choices = buttons
            for i, b in enumerate(buttons, 1):
                self.out.write(f"  {i}. {b.label}\n")
            self.out.write("\n")

    async def cancel(self) -> None:
        async for event in self.assistant.handle(Incoming(self.identity, self.chat, "/cancel")):
            if isinstance(event, Notice):
                self.out.write(event.text + "\n")


async def run(settings: Settings, stdin: TextIO = sys.stdin) -> None:
    """Chat in the terminal until end of input."""
    name = getpass.getuser()
    admin = f"console:{name}"
    settings = dataclasses.replace(settings, admins=(*settings.admins, admin))
    assistant = build_assistant(settings)
    await assistant.start()
    console = Console(assistant, user=name)
    loop = asyncio.get_running_loop()
    interactive = stdin.isatty()
    current: asyncio.Task[None] | None = None
    cancels: set[asyncio.Task[None]] = set()

    def on_interrupt() -> None:
        if current is not None and not current.done():
            task = loop.create_task(console.cancel())
            cancels.add(task)
            task.add_done_callback(cancels.discard)
        else:
            raise KeyboardInterrupt

    if interactive:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, on_interrupt)
        print("Ferry — type a message, /help for commands, Ctrl+C to stop an answer, Ctrl+D to leave.\n")
    try:
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip() in ("/quit", "/exit"):
                break
            if not line.strip() and interactive:
                continue
            current = asyncio.create_task(console.send(line.rstrip("\n")))
            await current
    finally:
        if interactive:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
        await assistant.close()
