"""Saga participants: the participant kit (:mod:`participants.kit`) and four example
services built with it (orders, payments, inventory, shipping)."""
