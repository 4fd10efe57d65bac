"""Messenger adapters (one process each) and the ``ferry`` command line."""
