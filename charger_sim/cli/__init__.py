"""The ``charger-sim`` command line: one module per subcommand; only this package prints."""
