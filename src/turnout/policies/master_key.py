"""The master key: the bootstrap admin credential.

Taken from ``$TURNOUT_MASTER_KEY`` or ``server.master_key``; when neither is set, generated
once and kept in ``DATA_DIR/master_key`` readable by its owner only (mode 0600).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from turnout.exceptions import ConfigError

__all__ = ["load_or_create_master_key"]

_PREFIX = "sk-turnout-"


def load_or_create_master_key(data_dir: Path) -> tuple[str, bool]:
    """The stored master key, creating it if there is none; returns (key, created)."""
    path = data_dir / "master_key"
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"{data_dir}: cannot create the data directory ({exc.strerror}); set TURNOUT_HOME "
            "or server.data_dir to a writable place"
        ) from None
    if path.exists():
        return _read(path), False
    key = _PREFIX + secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race
        return _read(path), False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key, True


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: the master key file is readable by others (mode {oct(mode & 0o777)}); "
            f"run: chmod 600 {path}"
        )
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise ConfigError(f"{path}: the master key file is empty; delete it to generate a new one")
    return key
