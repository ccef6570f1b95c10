"""The console's answers that are not a success: HTTP status, stable code, message."""

from __future__ import annotations


class ConsoleError(Exception):
    """An answer for the coordinator: HTTP status, stable code, message."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        # Extra response headers, e.g. Retry-After on a throttled sign-in.
        self.headers = headers


# A service the console needs did not answer (down, too slow, or refusing the console).
UNAVAILABLE = "service-unavailable"
