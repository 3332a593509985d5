"""The audit key file: the chain's HMAC key when EXPERTGATE_SECRET_KEY is not set.

Without a key the chain is plain SHA-256, which anyone who can write the database can
recompute after inserting or editing an event. So the embedded default keys itself: on
first start a random 256-bit key is written to ``data_dir/audit.key`` (mode 0600, like
``admin.key``), never to the database; every process reading the same data dir (the
API, the CLI, workers on shared storage) uses it.

Creating it is safe against concurrent first starts: the key is written to a private
temporary file and linked into place, which fails if another process got there first;
the loser then reads the winner's key.

An existing unkeyed chain stays as it is: the key applies from the next event on.
verify accepts unkeyed events only before the first keyed one (and before the newest
anchor written by a keyed process), so an unkeyed event inserted later is caught.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from backend.settings import SettingsError

log = logging.getLogger(__name__)

MIN_SECRET_CHARS = 16


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``, created first if the file does not exist.

    Raises SettingsError when the file cannot be read or holds too short a key.
    """
    if not path.exists():
        _create(path)
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"EXPERTGATE_AUDIT_KEY_FILE: cannot read the audit key {path}: {exc}") from None
    if len(text) < MIN_SECRET_CHARS:
        raise SettingsError(
            f"EXPERTGATE_AUDIT_KEY_FILE: {path} holds {len(text)} characters; at least "
            f"{MIN_SECRET_CHARS} are needed (delete it to have a new key made, or put `openssl rand -hex 32` in it)"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the audit key %s is readable by other users; chmod 600 it", path)
    return text.encode("utf-8")


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and refuses to replace a key another process made
        except FileExistsError:
            return
        log.warning(
            "created the audit chain key %s: back it up with the database; without it the chain cannot be verified",
            path.resolve(),
        )
    finally:
        tmp.unlink(missing_ok=True)
