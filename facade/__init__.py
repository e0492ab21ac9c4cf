"""The HTTP facade: OpenAI's audio API in front of the transcriber's gRPC API."""
