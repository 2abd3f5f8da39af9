"""The web UI under ``/ui``: server-rendered pages built on the API's operations and readers."""
