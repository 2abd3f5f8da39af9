"""`python -m participants.shipping [--host H] [--port P] [--no-migrate] [--no-seed]`."""

from participants.serve import main

main("shipping")
