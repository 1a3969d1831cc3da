"""Pictures, PNG or SVG: compared curves, a job's covariate-shift bands and loss landscape, a sweep's
heatmap."""
