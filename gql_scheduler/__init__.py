"""gql-scheduler: a job scheduler driven over GraphQL."""

from importlib import metadata

try:
    __version__ = metadata.version("gql-scheduler")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
