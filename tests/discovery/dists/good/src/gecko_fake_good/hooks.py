"""A hook plugin that records the events it observes, and the thread that imported it."""

import threading

from gecko.plugins import hookimpl
from gecko.types import Event

SEEN: list[str] = []
IMPORTED_ON_THREAD = threading.get_ident()


@hookimpl
async def gecko_event(event: Event) -> None:
    SEEN.append(event.type)
