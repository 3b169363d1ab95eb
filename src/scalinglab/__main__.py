"""`python -m scalinglab` runs the command line."""

from scalinglab.cli.main import main

main()
