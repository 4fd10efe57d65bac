"""Ferry's messenger-neutral core: one pipeline from an incoming message to reply events."""
