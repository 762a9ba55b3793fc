"""The ``prefactor_trace`` fixture comes from the installed ``prefactor`` pytest plugin."""

pytest_plugins = ["pytester"]
