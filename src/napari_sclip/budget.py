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


def eager_bytes(image: tuple[int, int], n_classes: int) -> int:
    """Bytes an in-memory result holds at full resolution: best class, its probability, labels."""
    return image[0] * image[1] * (4 + 2 * (2 if n_classes > 255 else 1))


def run_bytes(image: tuple[int, int], inference: tuple[int, int], n_windows: int, grid: tuple[int, int, int],
              n_queries: int, n_classes: int, lazy: bool) -> int:  # fmt: skip
    """Bytes a run allocates beyond the input and the model: model input, features (in memory up to
    their budget), per-window logits, block scratch, and the in-memory result unless ``lazy``."""
    from .features import MEMORY_BUDGET
    from .score import BLOCK_BYTES

    h, w = inference
    tokens = grid[0] * grid[1]
    pixels = min(12 * h * w, 1 << 29)
    features = min(4 * n_windows * tokens * grid[2], MEMORY_BUDGET)
    logits = 4 * n_windows * n_queries * tokens
    results = 0 if lazy else eager_bytes(image, n_classes)
    return pixels + features + logits + 4 * BLOCK_BYTES + results


def spill_bytes(n_windows: int, grid: tuple[int, int, int]) -> int:
    """Bytes of image features written to disk (those beyond the in-memory budget)."""
    from .features import MEMORY_BUDGET

    nbytes = 4 * n_windows * grid[0] * grid[1] * grid[2]
    return nbytes if nbytes > MEMORY_BUDGET else 0


def check_fits(needed: int, what: str, advice: str, disk: int = 0) -> None:
    """Raise :class:`ResourceError` if ``needed`` bytes exceed the free memory, or ``disk`` bytes
    the free space of the temporary folder."""
    free = available_bytes()
    if free is not None and needed > free:
        raise ResourceError(
            f"{what} would need about {needed / GB:.1f} GB of memory but only {free / GB:.1f} GB are free; {advice}"
        )
    if disk:
        import shutil
        import tempfile

        room = shutil.disk_usage(tempfile.gettempdir()).free
        if disk > room:
            raise ResourceError(
                f"{what} would need about {disk / GB:.1f} GB of temporary disk space for its image features "
                f"but only {room / GB:.1f} GB are free in {tempfile.gettempdir()}; {advice}"
            )
