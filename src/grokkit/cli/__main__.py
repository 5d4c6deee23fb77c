"""``python -m grokkit.cli``: the same as the ``grokkit`` command."""

import sys

from grokkit.cli import main

sys.exit(main())
