"""Generated gRPC API of the billing service (from proto/billing/v1); do not edit."""
