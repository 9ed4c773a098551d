"""`fakeother://`: a second scheme, in its own module, to prove registries load lazily and off the event loop."""

import threading

from gecko.plugins.storage.memory import MemoryStorage

IMPORTED_ON_THREAD = threading.get_ident()


class FakeOtherStorage(MemoryStorage):
    scheme = "fakeother"
