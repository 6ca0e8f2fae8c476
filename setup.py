"""Which packages ship: every gql_scheduler package on disk, and the migrations.

The rest of the configuration is in pyproject.toml. This file exists because pyproject.toml
cannot say both: its `packages` is either a list or a `find` directive, and `find` names
packages after their folders, so it never yields gql_scheduler.migrations, which is the
repository's alembic/ folder (mapped by `[tool.setuptools.package-dir]`). Discovery keeps
a new subpackage from being left out of the wheel; tests/test_wheel.py checks it.
"""

from setuptools import find_packages, setup

MIGRATIONS = ["gql_scheduler.migrations", "gql_scheduler.migrations.versions"]

setup(packages=[*find_packages(include=["gql_scheduler", "gql_scheduler.*"]), *MIGRATIONS])
