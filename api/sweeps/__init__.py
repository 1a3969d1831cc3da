"""`/v1/sweeps`: grids of specs × seeds, each point a job, read back aggregated over seeds."""
