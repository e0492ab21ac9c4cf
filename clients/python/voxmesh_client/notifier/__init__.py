"""The notifier service's generated API."""
