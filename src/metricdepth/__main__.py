"""``python -m metricdepth`` (and ``torchrun ... -m metricdepth train ...``) runs the command line."""

from .cli import main

main()
