"""Example participant: inventory (stock items, reservations, release, commit)."""
