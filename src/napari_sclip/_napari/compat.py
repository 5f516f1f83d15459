"""Process-level workarounds for running the engine inside napari (no Qt here)."""

from __future__ import annotations

import sys
from pathlib import Path


def block_triton_if_llvm_loaded() -> bool:
    """Make ``import triton`` fail cleanly when an LLVM-based OpenGL driver is loaded.

    With Mesa's llvmpipe / radeonsi (VMs, remote desktops, Xvfb), napari's canvas maps Mesa's
    ``libLLVM`` into the process; importing triton afterwards (torchvision imports
    ``torch._dynamo``, which probes for triton) loads a second LLVM and crashes the process
    with a segmentation fault. napari-sclip never uses ``torch.compile``, so torch runs fine
    without triton. Returns True when the block was installed.
    """
    if "triton" in sys.modules:
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: no Mesa LLVM clash known
        return False
    if "libLLVM" not in maps:
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # import raises ImportError
    return True
