"""``python -m pgai``: the same command line as the ``pgai`` console script."""

from pgai.cli import main

main()
