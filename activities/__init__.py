"""winfleet activities package."""
