"""winfleet workflows package."""
