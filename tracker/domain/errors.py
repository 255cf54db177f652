"""Domain errors. The web layer maps each class to one HTTP status, once.

DomainError
├── InvalidInput          a field holds a value the rules refuse        -> 422
├── NotFound              no such resource                              -> 404
├── Conflict              the request clashes with the current state    -> 409
│   └── IllegalTransition   a job cannot make that move now
├── StaleVersion          the caller read an older version of the job   -> 409 / 412
└── PreconditionRequired  a change to a job carried no version          -> 428
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(DomainError):
    def __init__(self, resource: str, identifier: object) -> None:
        super().__init__(f"{resource} {identifier} does not exist")
        self.resource = resource


class Conflict(DomainError):
    def __init__(self, detail: str, *, code: str = "conflict") -> None:
        super().__init__(detail)
        self.code = code


class IllegalTransition(Conflict):
    """A move the workflow rules refuse; `detail` is worded for the person who asked."""


class StaleVersion(DomainError):
    def __init__(self, current: int, *, from_header: bool, subject: str = "job") -> None:
        super().__init__(f"the {subject} changed since it was read: its version is now {current}")
        self.current = current
        self.from_header = from_header


class PreconditionRequired(DomainError):
    pass
