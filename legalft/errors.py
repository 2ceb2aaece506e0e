"""One error hierarchy for the library, rendered the same way by the pages and the CLI.

Every failure a person can act on is a ``LegalftError``: its message says what happened and what
to do, and never holds a key or token. ``kind`` names the failure for code that branches on it
(the CLI's exit code, a page's choice between ``st.error`` and ``st.warning``, a retry loop), and
each kind is its own class, so ``except NotFound`` reads as what it means::

    LegalftError
    ├── UsageError            bad arguments or settings (exit 2)
    │   └── ConfigError       a config with problems, each with what to change
    │   └── BudgetExceeded    a launch over what is left of the month's budget
    ├── AccessDenied          the signed-in user's role does not allow the action
    ├── StateError            the state folder or a job does not allow the operation
    │   ├── HomeNotWritable   LEGALFT_HOME cannot be written
    │   ├── IndexDamaged      the database cannot be read (``legalft doctor`` rebuilds it)
    │   ├── JobStateError     resume a running job, cancel a finished one...
    │   └── JobBusy           another command holds the job's lock
    └── ServiceError          a remote service: the managed API or a model server
        ├── MissingKey  AuthError  PermissionDenied  NotFound  Conflict  BadRequest
        ├── RateLimited  ServerFailed  TimedOut  Unreachable       (transient: try later)
        └── JobFailed  DeployFailed

``server_error_message`` reads a server's own reason from an error body; it lives here, a leaf
module, so the chat client and the managed path share it without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openai


class LegalftError(Exception):
    """A failure a person can act on; the message says what happened and what to do."""

    kind = "error"
    exit_code = 1
    transient = False

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(LegalftError):
    """Bad arguments or settings, found before anything ran."""

    kind = "usage"
    exit_code = 2


class ConfigError(UsageError, ValueError):
    """A configuration with problems; ``problems`` lists each with what to change."""

    kind = "config"

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class BudgetExceeded(UsageError):
    """A launch whose estimate is over what is left of the month's budget (an admin may override)."""

    kind = "budget"


class AccessDenied(LegalftError):
    """The user is not signed in, not on the allow-list, or their role does not allow the action."""

    kind = "access_denied"
    exit_code = 3


class StateError(LegalftError):
    kind = "state"


class HomeNotWritable(StateError):
    kind = "home_not_writable"


class IndexDamaged(StateError):
    kind = "index_damaged"


class JobStateError(StateError, RuntimeError):
    """An operation the job's current state does not allow (resume a running job...)."""

    kind = "job_state"


class JobBusy(JobStateError):
    """Another command is changing this job right now."""

    kind = "job_busy"


class ServiceError(LegalftError):
    """A remote service failed or refused; ``kind`` says how, ``transient`` whether later may help."""

    kind = "service"

    @staticmethod
    def of(kind: str, message: str, *, status_code: int | None = None) -> "ServiceError":
        """The subclass for ``kind`` (``auth``, ``not_found``, ``rate_limit``...)."""
        return _SERVICE_KINDS.get(kind, ServiceError)(message, status_code=status_code)


class MissingKey(ServiceError):
    kind = "no_key"


class AuthError(ServiceError):
    kind = "auth"


class PermissionDenied(ServiceError):
    kind = "permission"


class NotFound(ServiceError):
    kind = "not_found"


class Conflict(ServiceError):
    kind = "conflict"


class BadRequest(ServiceError):
    kind = "bad_request"


class RateLimited(ServiceError):
    kind = "rate_limit"
    transient = True


class ServerFailed(ServiceError):
    kind = "server"
    transient = True


class TimedOut(ServiceError):
    kind = "timeout"
    transient = True


class Unreachable(ServiceError):
    kind = "network"
    transient = True


class JobFailed(ServiceError):
    kind = "job_failed"


class DeployFailed(ServiceError):
    kind = "deploy_failed"


_SERVICE_KINDS: dict[str, type[ServiceError]] = {
    cls.kind: cls for cls in (MissingKey, AuthError, PermissionDenied, NotFound, Conflict, BadRequest, RateLimited,
                              ServerFailed, TimedOut, Unreachable, JobFailed, DeployFailed)
}


def render_error(exc: BaseException) -> str:
    """The one-paragraph text a page or the CLI shows for an error (no traceback, no class names)."""
    if isinstance(exc, LegalftError):
        return str(exc)
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return f"{type(exc).__name__}: {exc}"


def _field_errors(detail: list[Any]) -> str:
    """FastAPI/pydantic validation errors (``[{loc, msg, type}, ...]``) as ``field: reason; ...``."""
    parts = []
    for item in detail:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        loc = [str(p) for p in item.get("loc") or [] if p not in ("body", "query", "path")]
        where = ".".join(loc)
        msg = str(item.get("msg") or item.get("message") or item.get("type") or "invalid")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def server_error_message(exc: "openai.APIStatusError") -> str:
    """The server's own reason from an error body: OpenAI ``{"error": {...}}``, FastAPI ``{"detail": ...}``
    (a string, or a list of field errors read as ``field: reason; ...``)."""
    return body_error_message(exc.body) or exc.message


def body_error_message(body: Any) -> str | None:
    """The reason in a decoded error body, or None when it has none."""
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, list):
        return _field_errors(detail) or None
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    message = inner.get("message") or inner.get("detail") or (detail if isinstance(detail, str) else None)
    if isinstance(message, list):
        return _field_errors(message) or None
    if message:
        param = inner.get("param")
        return f"{message} ({param})" if param and param not in str(message) else str(message)
    return None
