"""``python -m twin_service.cli ARGS``: the ``twin-service`` command (tests, scripts and webstack run it so)."""

from twin_service.cli import main

if __name__ == "__main__":  # importing this module (as a walk over the package does) runs nothing
    main()
