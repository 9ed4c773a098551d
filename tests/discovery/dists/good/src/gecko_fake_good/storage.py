"""`fakegood://`: the builtin memory store under another scheme."""

from gecko.plugins.storage.memory import MemoryStorage


class FakeGoodStorage(MemoryStorage):
    scheme = "fakegood"
