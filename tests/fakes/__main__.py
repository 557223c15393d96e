"""``python -m tests.fakes --port P``: the fake upstream as a process (see upstream.main)."""

from tests.fakes.upstream import main

main()
