"""``python -m napari_sclip.cli``: the same as the ``napari-sclip`` command."""

import sys

from . import main

sys.exit(main())
