"""``python -m twin_service.cli ARGS``: the ``twin-service`` command (tests, scripts and webstack run it so)."""

from twin_service.cli import main

main()
