"""saga-orchestrator: a durable saga orchestrator."""
