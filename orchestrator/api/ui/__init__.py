"""The server-rendered web pages of the orchestrator."""
