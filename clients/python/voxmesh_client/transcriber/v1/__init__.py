"""Generated gRPC API of the transcriber service (from proto/transcriber/v1); do not edit."""
