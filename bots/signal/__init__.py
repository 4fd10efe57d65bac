"""The Signal adapter: ``incoming`` (messages → core values), ``reply`` (showing answers),
``render`` (Markdown → Signal styles), ``seams`` (signalbot internals), ``process``.

Imported as ``bots.signal`` it never shadows the standard library's ``signal``; running a
file of ``bots/`` as a script would (its folder comes first on ``sys.path``), which is why
``bots/cli.py`` is started with ``python -m bots.cli`` or the ``ferry`` command.
"""
