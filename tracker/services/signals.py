"""In-process signals between services and the parts of the app that run beside them."""

from __future__ import annotations

from collections.abc import Callable


class DeliveriesQueued:
    """Fired after a commit that queued deliveries, so this process's dispatcher looks at once.

    Only a hint: the dispatcher's sweep finds every due delivery anyway, including those queued by other
    processes (on PostgreSQL, LISTEN/NOTIFY carries the hint between processes).
    """

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` on every `fire()` until the returned function is called."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def fire(self) -> None:
        for listener in list(self._listeners):
            listener()
