"""The front door: what applications import from C{p2poverlay}."""

import subprocess
import sys

import pytest

import p2poverlay


def test_every_public_name_imports():
    for name in p2poverlay.__all__:
        assert getattr(p2poverlay, name) is not None, name
    assert "Node" in p2poverlay.__all__ and "BlockingNode" in p2poverlay.__all__


def test_the_public_names_are_the_real_ones():
    from p2poverlay.node import Node
    from p2poverlay.threads import BlockingNode
    assert p2poverlay.Node is Node
    assert p2poverlay.BlockingNode is BlockingNode


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        p2poverlay.Nope  # noqa: B018


@pytest.mark.parametrize("module", ["p2poverlay", "p2poverlay.client"])
def test_importing_the_package_or_the_client_loads_no_node(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.startswith("
            "('p2poverlay.node', 'p2poverlay.protocol', 'p2poverlay.commands'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
