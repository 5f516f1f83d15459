"""How much memory a run needs, estimated before anything large is allocated.

A run that cannot fit is refused with the numbers and what to change, instead of being killed by
the operating system half-way (or swapping the machine to a halt).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ResourceError

GB = 1024**3


def available_bytes() -> int | None:
    """Memory the system can still hand out (MemAvailable), or None where it cannot be read."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_bytes(image: tuple[int, int], inference: tuple[int, int], n_windows: int, tokens_per_window: int,
              dim: int, n_queries: int, n_classes: int) -> int:  # fmt: skip
    """Bytes a run allocates beyond the input: model input, features, merge canvas, results."""
    H, W = image
    h, w = inference
    pixels = 3 * h * w * 4
    features = n_windows * tokens_per_window * dim * 4
    canvas = (n_queries + 1) * h * w * 4
    results = (n_classes + 1) * H * W * 4 + H * W * (4 + 2 + 2)  # probabilities, best p, best, labels
    return pixels + features + canvas + results + 64 * 1024**2  # plus two merge strips


def check_fits(needed: int, what: str, advice: str) -> None:
    """Raise :class:`ResourceError` if ``needed`` bytes exceed the free memory."""
    free = available_bytes()
    if free is not None and needed > free:
        raise ResourceError(
            f"{what} would need about {needed / GB:.1f} GB of memory but only {free / GB:.1f} GB are free; {advice}"
        )
