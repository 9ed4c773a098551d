"""A hook plugin that records the events it observes."""

from gecko.plugins import hookimpl
from gecko.types import Event

SEEN: list[str] = []


@hookimpl
async def gecko_event(event: Event) -> None:
    SEEN.append(event.type)
