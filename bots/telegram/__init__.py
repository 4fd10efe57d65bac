"""The Telegram adapter: ``incoming`` (updates → core values), ``reply`` and ``send`` (showing
answers), ``render`` (Markdown → Telegram), ``http`` (the Bot API transport), ``process``."""
