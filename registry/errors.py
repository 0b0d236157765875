"""The registry's exception tree; the API maps it to HTTP problem responses in one handler.

    RegistryError                  any failure the registry reports on purpose
    ├── InvalidInput               bad config, hostile weights URI, malformed request   → 422
    │   └── ConfigError            YAML syntax or schema error; names line/column or path
    ├── NotFound                   unknown model, version, alias, token                → 404
    ├── Conflict                   stale expected version, nothing to roll back to     → 409
    │   └── PolicyRefused          a promotion fails its alias's rules; lists each     → 409
    ├── PermissionDenied           the caller's token may not do this                  → 403
    ├── Unauthenticated            no token, or a token that matches none              → 401
    ├── TooManyRequests            heartbeats from one instance faster than allowed    → 429
    ├── AuditChainBroken           `verify` found a row whose hash does not match      → 500
    ├── SchemaNotAtHead            the database needs `mmgov db upgrade`               → 503
    └── DatabaseUnavailable        the database cannot be reached or does not exist    → 503
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: every error the registry raises on purpose."""

    title = "Registry error"
    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(RegistryError):
    """Bad input; ``errors`` lists every problem found when there are several (path, message)."""

    title = "Invalid input"
    status = 422

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors


class ConfigError(InvalidInput):
    title = "Invalid model config"


class NotFound(RegistryError):
    title = "Not found"
    status = 404


class Conflict(RegistryError):
    title = "Conflict"
    status = 409


class PolicyRefused(Conflict):
    """A promotion refused by its alias's rules; ``errors`` names every unmet rule."""

    title = "Promotion refused by policy"

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.errors = errors


class PermissionDenied(RegistryError):
    title = "Permission denied"
    status = 403


class Unauthenticated(RegistryError):
    title = "Unauthenticated"
    status = 401


class TooManyRequests(RegistryError):
    title = "Too many requests"
    status = 429


class AuditChainBroken(RegistryError):
    title = "Audit chain broken"
    status = 500

    def __init__(self, detail: str, seq: int) -> None:
        super().__init__(detail)
        self.seq = seq


class SchemaNotAtHead(RegistryError):
    title = "Database schema is not at head"
    status = 503


class DatabaseUnavailable(RegistryError):
    title = "Database unavailable"
    status = 503


__all__ = [
    "AuditChainBroken",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "PolicyRefused",
    "RegistryError",
    "SchemaNotAtHead",
    "TooManyRequests",
    "Unauthenticated",
]
