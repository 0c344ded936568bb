"""Where the public reference data the suites read lies: not shipped with Meshpilot, found in
MESHPILOT_SHARED_DATA or in the project's ../shared/data next to the working directory."""

from __future__ import annotations

import os
from pathlib import Path


def shared_folder(name: str, *required: str, override: str | None = None) -> Path | None:
    """The folder `name` of the shared data that holds every `required` file, or None. `override` names an
    environment variable that points at the folder itself."""
    shared = os.environ.get("MESHPILOT_SHARED_DATA")
    candidates = [override and os.environ.get(override), shared and Path(shared) / name,
                  Path.cwd().parent / "shared" / "data" / name]
    for candidate in candidates:
        if candidate and all((Path(candidate) / file).is_file() for file in required):
            return Path(candidate)
    return None
