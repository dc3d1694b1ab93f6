"""winfleet sim package."""
