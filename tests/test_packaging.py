"""What `pip install .` ships (CI installs the package, not the working tree)."""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_msnp6_package_is_listed_in_setup_cfg():
    # A package left out installs without it, and only a non-editable install notices.
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "msnp6").rglob("__init__.py")}
    assert found - listed == set()
