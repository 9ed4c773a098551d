"""One of two distributions that both claim the name 'fakedup'."""

from gecko.plugins import hookimpl
from gecko.plugins.storage.memory import MemoryStorage
from gecko.types import Event


class DupStorage(MemoryStorage):
    scheme = "fakedup"


@hookimpl
def gecko_event(event: Event) -> None:
    return None
