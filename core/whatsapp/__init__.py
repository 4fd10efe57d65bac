"""Import of a WhatsApp "Export chat" file: reading, parsing, role detection, turns."""
