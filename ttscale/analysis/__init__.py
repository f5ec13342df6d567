"""Cost–accuracy analysis of a run: curves, frontier, cutoffs, saturation and inverse scaling."""
