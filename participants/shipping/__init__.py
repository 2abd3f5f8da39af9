"""Example participant: shipping (create a shipment after the pivot, cancel it)."""
