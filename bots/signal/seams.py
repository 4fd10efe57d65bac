"""The private parts of signalbot that Ferry relies on, in one place, checked at start.

signalbot 2.2 offers no public hook for three things Ferry needs:

* its receive stream (``bot._signal.messages.receive``), wrapped to skip malformed frames and
  to reconnect a WebSocket that the server closed (signalbot would stop receiving silently);
* stopping its pipeline without stopping the event loop (``bot._pipeline.stop()``; the
  public ``bot.stop()`` also stops the loop, which is not the adapter's to stop);
* the model of a received frame (``signalbot._generated.Message``), to validate a frame
  before signalbot does (one bad frame makes it drop the connection).

:func:`check_signalbot` runs before the bot starts: an installed signalbot outside the
tested range, or one whose internals moved, stops the process with one clear sentence
instead of failing later in the middle of receiving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib.metadata import version as installed_version

from packaging.specifiers import SpecifierSet
from signalbot import SignalBot
from signalbot._generated import Message as ReceivedFrame

from core.settings import SettingsError

SUPPORTED_SIGNALBOT = SpecifierSet(">=2.2.1,<2.3")
"""The signalbot releases whose internals tests/bots/test_signal_bot.py pins."""

__all__ = [
    "SUPPORTED_SIGNALBOT",
    "ReceivedFrame",
    "SignalbotMismatch",
    "check_signalbot",
    "replace_receive",
    "stop_pipeline",
]


class SignalbotMismatch(SettingsError):
    """The installed signalbot is not one whose private seams Ferry knows (``ferry`` says so in
    one line and exits, as for a wrong setting)."""


def check_signalbot(found: str | None = None) -> None:
    """Raise :class:`SignalbotMismatch` unless the installed signalbot is a supported one."""
    found = found or installed_version("signalbot")
    if found not in SUPPORTED_SIGNALBOT:
        raise SignalbotMismatch(
            f"signalbot {found} is installed, but Ferry supports signalbot {SUPPORTED_SIGNALBOT} "
            "(it relies on internals that change between releases): install the version in "
            "requirements.lock (pip install -r requirements.lock)"
        )


def replace_receive(
    bot: SignalBot, wrap: Callable[[Callable[[], AsyncIterator[str]]], Callable[[], AsyncIterator[str]]]
) -> None:
    """Replace the receive stream signalbot's producer iterates with ``wrap(original)``."""
    messages = getattr(getattr(bot, "_signal", None), "messages", None)
    original = getattr(messages, "receive", None)
    if original is None:
        raise SignalbotMismatch("signalbot has no _signal.messages.receive: this release is not supported")
    messages.receive = wrap(original)  # type: ignore[union-attr]


async def stop_pipeline(bot: SignalBot) -> None:
    """Stop signalbot's producer and consumers without stopping the event loop."""
    pipeline = getattr(bot, "_pipeline", None)
    if pipeline is None:
        raise SignalbotMismatch("signalbot has no _pipeline: this release is not supported")
    await pipeline.stop()
