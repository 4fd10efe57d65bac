"""Where the benches keep the store's data folder: on disk, as people run Ferry, never on tmpfs.

A store on tmpfs makes every fsync free and hides the cost people pay; the benches put the data
folder on the file system a user's data folder would be on and print which one it is.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MEMORY_FILE_SYSTEMS = {"tmpfs", "ramfs"}


def file_system(path: Path) -> str:
    """The type of the file system holding ``path`` (``ext4``, ``tmpfs`` …), from /proc/mounts."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def disk_folder() -> Path:
    """A parent folder on disk for a temporary data folder: the system's temp folder unless tmpfs."""
    for candidate in (Path(tempfile.gettempdir()), Path("/var/tmp"), Path.cwd()):
        if candidate.is_dir() and file_system(candidate) not in MEMORY_FILE_SYSTEMS:
            return candidate
    return Path.cwd()


def describe(store_kind: str, data_dir: Path) -> str:
    """The header line naming the store and, for a file store, its folder's file system."""
    if store_kind == "memory":
        return "store: memory (nothing written to disk)"
    return f"store: {store_kind} in {data_dir} (file system: {file_system(data_dir)})"
