"""Gecko's public test kit: deterministic models, a pytest plugin and conformance suites.

Nothing in the engines imports this package.
"""
