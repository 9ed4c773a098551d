"""A plugin distribution whose module raises on import."""

raise RuntimeError("gecko-fake-broken exploded on import")
