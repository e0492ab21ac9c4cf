"""Generated gRPC API of the notifier service (from proto/notifier/v1); do not edit."""
