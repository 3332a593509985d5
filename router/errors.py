"""Errors raised by the router package.

RouterError
 ├── ExpertNotAllowed   the caller asked for an expert it may not use
 ├── UnknownExpertName  the caller asked for an expert the gate does not know
 └── ArtifactError      a gate artifact is missing, corrupt or does not match the encoder
      └── ArtifactNotReady  its files do not (yet) match the checksum its pointer published
"""

from __future__ import annotations


class RouterError(Exception):
    pass


class ExpertNotAllowed(RouterError):
    def __init__(self, expert: str) -> None:
        super().__init__(f"you are not allowed to use the expert {expert!r}")
        self.expert = expert


class UnknownExpertName(RouterError):
    def __init__(self, expert: str) -> None:
        super().__init__(f"unknown expert {expert!r}")
        self.expert = expert


class ArtifactError(RouterError):
    pass


class ArtifactNotReady(ArtifactError):
    """A published version whose files differ from their published checksum (yet): retry later."""
