"""`fedssl deploy`: credentials, SuperLink and SuperNode command lines, run submission and a
loopback federation for rehearsal and tests (see docs/deployment.md)."""
