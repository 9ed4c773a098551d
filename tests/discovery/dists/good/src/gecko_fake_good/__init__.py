"""A well-behaved plugin distribution: two storage schemes in two modules and a hook plugin."""
