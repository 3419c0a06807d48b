"""`python -m parcelproof` runs the command line."""

from parcelproof.cli import main

main()
