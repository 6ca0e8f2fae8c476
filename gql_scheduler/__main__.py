import sys

from gql_scheduler.cli import main

sys.exit(main())
