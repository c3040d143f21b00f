"""The error a config value that cannot work raises: at the bottom of the layers, so any layer may raise it;
config/plain_errors.py reports it (and the other mistakes a user makes) as one line."""


class ConfigError(ValueError):
    """A config value that cannot work, named with what would be valid."""
