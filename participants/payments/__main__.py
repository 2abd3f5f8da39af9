"""`python -m participants.payments [--host H] [--port P] [--no-migrate] [--no-seed]`."""

from participants.serve import main

main("payments")
