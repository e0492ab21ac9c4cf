"""The transcriber service's generated API."""
