"""ttscale."""
