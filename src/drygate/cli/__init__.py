"""The ``drygate`` command line (click + rich), off the hook's hot path."""
