"""Where edgernn's non-Python files live.

In a source checkout the templates are the repository's ``firmware_templates/``; a wheel
carries them inside the package (``edgernn/firmware_templates`` is a link to that folder,
which the build copies).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGE_COPY = Path(__file__).resolve().parent / "firmware_templates"
TEMPLATES_DIR = REPO_ROOT / "firmware_templates" if (REPO_ROOT / "firmware_templates").is_dir() else _PACKAGE_COPY
