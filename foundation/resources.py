"""Files shipped inside the installed packages (presets, name tables, the static embedder, examples).

Found through importlib.resources, so an installed wheel finds them wherever it runs from, not
only a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_path(package: str, *parts: str) -> Path:
    """A file or folder inside an installed package, as a filesystem path (wheels install unzipped)."""
    return Path(str(files(package).joinpath(*parts)))
