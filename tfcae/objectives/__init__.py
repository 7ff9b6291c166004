"""The objective stage: the objective seam (step context, loss terms, training hooks),
rate and distortion, and the image metrics that measure them on real files."""
