"""The test harness's own helpers."""
from __future__ import annotations

from msnp6.testing import free_port


def test_free_port_never_hands_out_a_port_twice():
    # Two listeners of one server given the same port made CI fail ("Address already in use").
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
