"""object_challenge: the services behind the API edge of a small cloud provider."""

__version__ = "0.1.0"
