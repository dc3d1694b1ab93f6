"""winfleet worker package."""
