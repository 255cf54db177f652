"""The version a change says it was based on (optimistic locking): a job's must be named; an account's,
a contact's or a webhook endpoint's may be."""

from __future__ import annotations

from dataclasses import dataclass

from tracker.domain.errors import PreconditionRequired, StaleVersion


@dataclass(frozen=True)
class ExpectedVersion:
    """The version the caller read, from `If-Match` or a `version` field (None: not sent)."""

    version: int | None
    from_header: bool = False
    also: frozenset[int] = frozenset()
    """Further versions an `If-Match` list names (`"3", "4"`): any one of them will do."""

    def _names(self, current: int) -> bool:
        return current == self.version or current in self.also

    def check(self, current: int) -> None:
        if self.version is None:
            raise PreconditionRequired(
                "changes to a job must name the version read: send If-Match with its ETag "
                "(If-Match: * names none) or a version field"
            )
        if not self._names(current):
            raise StaleVersion(current, from_header=self.from_header)

    def check_if_named(self, current: int, subject: str) -> None:
        """For resources whose changes may name the version they read (accounts, contacts, webhooks):
        a change naming none (`If-Match: *` included) applies to whatever is there."""
        if self.version is not None and not self._names(current):
            raise StaleVersion(current, from_header=self.from_header, subject=subject)


UNNAMED = ExpectedVersion(None)
"""A change that names no version (allowed for accounts, contacts and webhook endpoints)."""
