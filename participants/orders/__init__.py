"""Example participant: orders (create pending, approve, reject; a semantic lock)."""
