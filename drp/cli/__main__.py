"""`python -m drp.cli`, as `drp serve` starts the flows beside the web app."""

from drp.cli import main

main()
