"""`fakeother://`: a second scheme, in its own module, to prove registries load lazily."""

from gecko.plugins.storage.memory import MemoryStorage


class FakeOtherStorage(MemoryStorage):
    scheme = "fakeother"
