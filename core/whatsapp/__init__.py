"""Import of a WhatsApp "Export chat" file: reading, parsing, role detection, turns.

Pure and standard-library only; nothing here knows a messenger or the store. The usual path::

    export = read_export(filename, data)          # raises ImportRejected
    chat = parse_export(export.text)
    roles = detect_roles(chat, filename)          # ask the user when roles.needs_question
    transcript = to_turns(chat, roles)            # turns + fingerprint against double imports
"""

from core.whatsapp.archive import MAX_EXPORT_BYTES, ExportText, ImportRejected, read_export
from core.whatsapp.parser import Message, ParsedChat, SystemLine, parse_export
from core.whatsapp.roles import RoleGuess, Transcript, Turn, detect_roles, fingerprint, to_turns

__all__ = [
    "MAX_EXPORT_BYTES",
    "ExportText",
    "ImportRejected",
    "Message",
    "ParsedChat",
    "RoleGuess",
    "SystemLine",
    "Transcript",
    "Turn",
    "detect_roles",
    "fingerprint",
    "parse_export",
    "read_export",
    "to_turns",
]
