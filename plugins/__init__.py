"""Services on the gateway."""
