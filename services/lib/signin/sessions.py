"""Server-side sessions: signed tokens naming a session the server can revoke.

A token is `itsdangerous`-signed `{"u": username, "s": session id}`. It is valid
while its signature holds, it is younger than `max_age_s` AND its session id is
still in the store: signing out (`revoke`) or removing a user (`revoke_user`)
ends it at once, however long the token had left. The signature refuses forged
or altered tokens before the store is consulted.

The store is the process's memory, bounded by `max_sessions` (the oldest session
ends first when full). That is honest for one replica: a restart signs everybody
out, and several replicas would each know only their own sessions (run one, or
route each user to the same replica; a shared store is future work).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


@dataclass(frozen=True)
class Session:
    session_id: str
    username: str
    expires_at: float


class SessionStore:
    def __init__(
        self,
        secret_key: str,
        *,
        max_age_s: int,
        salt: str = "carelink.session",
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age_s <= 0 or max_sessions < 1:
            raise ValueError("max_age_s and max_sessions must be positive")
        self._serializer = URLSafeTimedSerializer(secret_key, salt=salt)
        self.max_age_s = max_age_s
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def issue(self, username: str) -> str:
        """A new session for `username`; returns its token."""
        self._drop_expired()
        session = Session(secrets.token_urlsafe(16), username, self._clock() + self.max_age_s)
        self._sessions[session.session_id] = session
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        token: str = self._serializer.dumps({"u": username, "s": session.session_id})
        return token

    def username(self, token: str) -> str | None:
        """The token's user while its session lives; None when the token is forged,
        malformed, expired or revoked."""
        session = self._session(token)
        return session.username if session else None

    def revoke(self, token: str) -> bool:
        """Ends the token's session (sign-out); False when it had none."""
        session = self._session(token)
        if session is None:
            return False
        self._sessions.pop(session.session_id, None)
        return True

    def revoke_user(self, username: str) -> int:
        """Ends every session of `username` (user removed, password changed)."""
        ids = [sid for sid, s in self._sessions.items() if s.username == username]
        for sid in ids:
            del self._sessions[sid]
        return len(ids)

    def __len__(self) -> int:
        return len(self._sessions)

    def _session(self, token: str) -> Session | None:
        try:
            data: Any = self._serializer.loads(token, max_age=self.max_age_s)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict):
            return None
        session = self._sessions.get(str(data.get("s")))
        if session is None or session.username != data.get("u"):
            return None
        if session.expires_at <= self._clock():
            self._sessions.pop(session.session_id, None)
            return None
        return session

    def _drop_expired(self) -> None:
        # Sessions are kept in issue order, so the expired ones are at the front.
        now = self._clock()
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires_at > now:
                break
            self._sessions.popitem(last=False)
