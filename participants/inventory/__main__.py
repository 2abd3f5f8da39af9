"""`python -m participants.inventory [--host H] [--port P] [--no-migrate] [--no-seed]`."""

from participants.serve import main

main("inventory")
