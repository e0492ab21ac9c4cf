"""The billing service's generated API."""
