"""The portal's errors, answered as a page (or JSON under /api/) with a stable code."""

from __future__ import annotations


class PortalError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
