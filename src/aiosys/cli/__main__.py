"""``python -m aiosys.cli``: the ``aiosys`` command without its console script."""

from .main import main

main()
