"""`python -m participants.orders [--host H] [--port P] [--no-migrate] [--no-seed]`."""

from participants.serve import main

main("orders")
