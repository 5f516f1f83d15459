"""Which image goes with which mask.

Your own folders: an image and a mask pair when their file names have the same stem (the name
without its suffix), whatever their suffixes (``cells1.tif`` with ``cells1.png``); only the files
directly in each folder count. Files without a partner are listed, not guessed at.

A dataset layout: as mmseg lists it. With a split file, each stem it names gives
``<images>/<stem><image suffix>`` and ``<masks>/<stem><mask suffix>``; without one, every file
under the image folder (subfolders included) whose name ends with the image suffix, in sorted
order, with its mask at the same relative path and the suffix replaced. Suffixes match exactly
(``.JPG`` is not ``.jpg``), as mmseg's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Suffixes of your own images and masks (any case).
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Pair:
    """One image and its mask; ``name`` identifies the image in the results (relative path)."""

    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[Pair, ...]
    images_without_mask: tuple[Path, ...] = ()
    masks_without_image: tuple[Path, ...] = ()

    def unpaired_lines(self, limit: int = 10) -> list[str]:
        """Sentences naming the files without a partner (the first ``limit`` of each kind)."""
        lines = []
        for what, files in (("images without a mask", self.images_without_mask),
                            ("masks without an image", self.masks_without_image)):  # fmt: skip
            if files:
                shown = ", ".join(p.name for p in files[:limit]) + (" ..." if len(files) > limit else "")
                lines.append(f"{len(files)} {what} (not evaluated): {shown}")
        return lines


def _by_stem(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"the {what} folder {folder} does not exist or is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in SUFFIXES:
            continue
        if path.stem in found:
            raise ValueError(f"{found[path.stem].name} and {path.name} in {folder} have the same stem, so "
                             f"which one is meant is unclear; keep one of them.")  # fmt: skip
        found[path.stem] = path
    return found


def pair_folders(images: Path, masks: Path) -> Pairing:
    """Pair the images and masks of two folders by file stem."""
    imgs, msks = _by_stem(Path(images), "images"), _by_stem(Path(masks), "masks")
    pairs = tuple(Pair(stem, imgs[stem], msks[stem]) for stem in imgs if stem in msks)
    return Pairing(
        pairs,
        tuple(p for s, p in imgs.items() if s not in msks),
        tuple(p for s, p in msks.items() if s not in imgs),
    )


def _missing(paths: list[Path], what: str) -> None:
    if paths:
        shown = ", ".join(str(p) for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
        raise ValueError(f"{len(paths)} {what} missing: {shown}")


def layout_pairs(root: Path, images: str, masks: str, image_suffix: str, mask_suffix: str,
                 split: str | None) -> Pairing:  # fmt: skip
    """The pairs of a dataset layout under ``root``; raises ValueError naming anything missing."""
    image_dir, mask_dir = Path(root) / images, Path(root) / masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise ValueError(f"no folder {folder}: --root must be the folder that holds {images}/ and {masks}/")
    if split is not None:
        split_file = Path(root) / split
        if not split_file.is_file():
            raise ValueError(f"no split file {split_file}")
        names = [s.strip() for s in split_file.read_text(encoding="utf-8").splitlines() if s.strip()]
        pairs = [Pair(n, image_dir / (n + image_suffix), mask_dir / (n + mask_suffix)) for n in names]
        _missing([p.image for p in pairs if not p.image.is_file()], "images named in the split file are")
    else:
        rels = sorted(p.relative_to(image_dir).as_posix() for p in image_dir.rglob("*" + image_suffix)
                      if p.is_file() and p.name.endswith(image_suffix))  # fmt: skip
        pairs = [Pair(r, image_dir / r, mask_dir / (r[: -len(image_suffix)] + mask_suffix)) for r in rels]
        if not pairs:
            raise ValueError(f"no image ending in {image_suffix} under {image_dir}")
    _missing([p.mask for p in pairs if not p.mask.is_file()], "masks are")
    return Pairing(tuple(pairs))
