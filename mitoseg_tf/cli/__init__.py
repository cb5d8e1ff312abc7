"""The ``mitoseg`` command."""
