"""The in-container fact gatherer and the host-side view of a container."""

from __future__ import annotations

from importlib import resources

END_MARKER = "isobench-probe-end"
SCRIPT_NAME = "probe.sh"
# Path of the probe script inside the probe image.
IMAGE_PATH = "/isobench/probe.sh"


def script_text() -> str:
    """Return the probe's POSIX sh source."""
    return resources.files(__package__).joinpath(SCRIPT_NAME).read_text(encoding="utf-8")
