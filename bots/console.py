"""``ferry chat``: the assistant in the terminal, for trying it out and for admins.

The person at the terminal can read the data folder anyway, so they are an admin here.
In a terminal, lines are read with prompt_toolkit (editing, history, pastes of any length),
answers are rendered by the messengers' own renderer (bots/rendering) as rich text behind a
"thinking…" line, Ctrl+C stops an answer (and leaves at an empty prompt), Ctrl+D leaves.
With piped input and output it reads lines and writes plain text, so scripts can drive it. Log
lines go to a file in the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from bots import attach
from bots.rendering import render_terminal, rich_styles
from core.app import build_assistant
from core.assistant import Assistant
from core.i18n import Texts
from core.settings import Settings, SettingsError
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

LOG_FILE = "ferry-chat.log"
"""Where ``ferry chat`` writes its log lines, inside the data folder (never into an answer)."""

# Texts written for a messenger, and the key of what a terminal says instead.
_TERMINAL_WORDING = {
    "help.footer": "console.help_footer",
    "chat.chats_header": "console.chats_header",
    "import.help": "console.import_help",
}


def add_subcommand(sub: Any) -> None:
    """Register ``ferry chat [--user IDENTITY]``."""
    chat = sub.add_parser("chat", help="chat with the assistant in the terminal")
    chat.add_argument(
        "--user", metavar="IDENTITY",
        help="continue as this identity, e.g. telegram:123456 (history imported or linked there)",
    )


def for_terminal(texts: Texts, text: str) -> str:
    """``text`` with messenger wording ("tap", "share the file", "mention me") put for a terminal."""
    for lang in texts.languages:
        for key, terminal in _TERMINAL_WORDING.items():
            messenger = texts.raw(lang, key)
            if messenger and messenger != key and messenger in text:
                text = text.replace(messenger, texts.raw(lang, terminal))
        cancel_line = texts.get(lang, "help.line", command="cancel", description=texts.raw(lang, "cmd.cancel"))
        if texts.raw(lang, "help.header") in text:  # Ctrl+C stops an answer here; /cannot be typed then
            text = text.replace(cancel_line + "\n", "")
    return text


def styled_for_terminal(markdown: str) -> Any:
    """``markdown`` as a rich ``Text``, through the same renderer the messengers use (bots/rendering)."""
    from rich.text import Text

    styled = render_terminal(markdown)
    text = Text(styled.text)
    for start, end, style in rich_styles(styled):
        text.stylize(style, start, end)
    return text


class Console:
    """Sends typed lines through the core and shows the reply events, plain or rendered."""

    def __init__(
        self, assistant: Assistant, out: TextIO = sys.stdout, user: str | None = None,
        identity: Identity | None = None, rich_console: Any = None, folder: Path | None = None,
    ) -> None:
        self.assistant = assistant
        self.out = out
        name = user or getpass.getuser()
        self.identity = identity or Identity("console", name)
        self.chat = ChatKey("console", name)
        self.folder = folder or Path.cwd()
        self._rich = rich_console  # a rich Console when the output is a terminal
        self._choices: list[Button] = []
        self.lang = assistant.language(os.environ.get("LANG"))

    def text(self, key: str, **values: Any) -> str:
        """A text of the console's own, in the language of the terminal."""
        return self.assistant.texts.get(self.lang, key, **values)

    def incoming(self, line: str) -> Incoming:
        """The core's value for a typed line; a bare number picks from the menu just shown.

        Like on Signal, a menu answers only the next line: anything typed expires it.
        """
        stripped = line.strip()
        offered, self._choices = self._choices, []
        lang = os.environ.get("LANG")
        if stripped.isdigit() and 1 <= int(stripped) <= len(offered):
            data = offered[int(stripped) - 1].data
            return Incoming(self.identity, self.chat, "", sender_name=self.identity.id, callback=data,
                            language_code=lang)
        return Incoming(self.identity, self.chat, line, sender_name=self.identity.id, language_code=lang)

    async def send(self, line: str) -> None:
        """Handle one typed line and show everything the core answers."""
        incoming = self.incoming(line)
        if (wanted := attach.parse(line)) is not None:  # /attach PATH [question]: bots/attach.py
            file = attach.read(wanted[0])
            if file is None:
                self._write(self.text("media.attach_missing", path=wanted[0]) + "\n\n")
                return
            incoming = dataclasses.replace(incoming, text=wanted[1], attachments=(file,))
        answer = _Answer(self)
        try:
            async for event in self.assistant.handle(incoming):
                if isinstance(event, StreamStart):
                    answer.start()
                elif isinstance(event, PartialAnswer):
                    answer.update(event.text)
                elif isinstance(event, FinalText):
                    answer.finish(event.text, event.streamed)
                    self._show_buttons(event.buttons)
                elif isinstance(event, Notice):
                    answer.stop()
                    self._show_notice(event.text, event.buttons)
                elif isinstance(event, FileReply):
                    self._save(event)
                elif isinstance(event, Progress):
                    self._write(f"{event.text}\n")
                elif isinstance(event, AdminAlert) and str(self.identity) in event.to:
                    self._show_notice(event.text, event.buttons)
        finally:
            answer.stop()
        self.out.flush()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def markdown(self, text: str) -> None:
        """Show ``text``: rendered as Markdown in a terminal, as is otherwise."""
        if self._rich is None:
            self._write(text + "\n\n")
            return
        self._rich.print(styled_for_terminal(text))
        self._rich.print()

    def _show_notice(self, text: str, rows: tuple[tuple[Button, ...], ...]) -> None:
        text = for_terminal(self.assistant.texts, text)
        labels = {f"• {b.label}" for row in rows for b in row}
        # The numbered menu below lists them: once is enough.
        text = "\n".join(line for line in text.splitlines() if line not in labels)
        self.markdown(text)
        self._show_buttons(rows)

    def _show_buttons(self, rows: tuple[tuple[Button, ...], ...]) -> None:
        buttons = [b for row in rows for b in row]
        if buttons:
            self._choices = buttons
            for i, b in enumerate(buttons, 1):
                # /chats lists the active conversation (the most recently used) first.
                mark = self.text("console.current") if i == 1 and b.data.startswith("conv:") else ""
                self._write(f"  {i}. {b.label}{mark}\n")
            self._write("\n")

    def _save(self, reply: FileReply) -> None:
        """Write a file the core sends (an /export) into the current folder, never over another."""
        path = self.folder / Path(reply.filename).name
        stem, n = path.stem, 1
        while path.exists():
            n += 1
            path = path.with_name(f"{stem}-{n}{path.suffix}")
        path.write_bytes(reply.data)
        self._write(self.text("console.saved", path=str(path)) + "\n")
        if reply.caption:
            self._write(reply.caption + "\n\n")

    async def cancel(self) -> None:
        """Stop the answer being written (Ctrl+C during an answer)."""
        async for event in self.assistant.handle(Incoming(self.identity, self.chat, "/cancel")):
            if isinstance(event, Notice):
                self._write(event.text + "\n")


class _Answer:
    """One streamed answer: a "thinking…" line, then the text as it grows, then the final text."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown = 0
        self.live: Any = None

    def start(self) -> None:
        self.shown = 0
        if self.console._rich is not None:
            from rich.live import Live
            from rich.text import Text

            thinking = self.console.text("console.thinking")
            self.live = Live(Text(thinking, style="dim"), console=self.console._rich,
                             refresh_per_second=8, vertical_overflow="visible")
            self.live.start(refresh=True)

    def update(self, text: str) -> None:
        if self.live is not None:
            self.live.update(styled_for_terminal(text))
        else:
            self.console._write(text[self.shown:])
        self.shown = len(text)

    def finish(self, text: str, streamed: bool) -> None:
        if self.live is not None:
            self.live.update(styled_for_terminal(text), refresh=True)
            self.stop()
            self.console._rich.print()
            return
        if streamed:  # the final text extends what was streamed (a cut-off mark at most)
            self.console._write(text[self.shown:] + "\n\n")
        else:
            self.console.markdown(text)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _log_to_file(data_dir: Path) -> None:
    """Send every log line to a file: in a terminal, stderr would land in the middle of answers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
    handler = logging.FileHandler(data_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _check_data_dir(data_dir: Path) -> None:
    """One clear line (as ``ferry doctor`` says it) instead of a traceback for an unusable folder."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".ferry-chat-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        reason = e.strerror or str(e)
        raise SettingsError(
            f"cannot use {data_dir}: {reason}; make FERRY_DATA_DIR a writable folder with free space"
        ) from e


async def _read_lines(stdin: TextIO, interactive: bool) -> Any:
    """Typed lines: with prompt_toolkit in a terminal, plain reads otherwise; ends at Ctrl+D / EOF."""
    if not interactive:
        while line := await asyncio.to_thread(stdin.readline):
            yield line.rstrip("\n")
        return
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings

    keys = KeyBindings()

    @keys.add("c-c")
    def _(event: Any) -> None:
        # At an empty prompt Ctrl+C leaves at once; with text typed it clears the line.
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=EOFError)

    session: PromptSession[str] = PromptSession(key_bindings=keys)
    while True:
        try:
            yield await session.prompt_async("> ")
        except EOFError:
            return


async def run(settings: Settings, stdin: TextIO = sys.stdin, user: str | None = None) -> None:
    """Chat in the terminal until end of input; ``user`` continues as that identity (``telegram:1``)."""
    name = getpass.getuser()
    try:
        identity = Identity.parse(user) if user else Identity("console", name)
    except ValueError as e:
        raise SettingsError(f"--user: {e}") from e
    _check_data_dir(settings.data_dir)
    _log_to_file(settings.data_dir)
    settings = dataclasses.replace(settings, admins=(*settings.admins, f"console:{name}", str(identity)))
    assistant = build_assistant(settings)
    try:
        await assistant.start()
    except OSError as e:
        raise SettingsError(f"cannot use {settings.data_dir}: {e}") from e
    interactive = stdin.isatty() and sys.stdout.isatty()
    rich_console = None
    if interactive:
        from rich.console import Console as RichConsole

        rich_console = RichConsole()
    console = Console(assistant, user=name, identity=identity, rich_console=rich_console)
    loop = asyncio.get_running_loop()
    current: asyncio.Task[None] | None = None
    cancels: set[asyncio.Task[None]] = set()

    def on_interrupt() -> None:  # only while an answer is being written: prompts take Ctrl+C as a key
        if current is not None and not current.done():
            task = loop.create_task(console.cancel())
            cancels.add(task)
            task.add_done_callback(cancels.discard)

    if interactive:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, on_interrupt)
        print(console.text("console.welcome") + "\n")
    try:
        async for line in _read_lines(stdin, interactive):
            if line.strip() in ("/quit", "/exit"):
                break
            if not line.strip() and interactive:
                continue
            current = asyncio.create_task(console.send(line))
            await current
    finally:
        if interactive:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
        await assistant.close()
