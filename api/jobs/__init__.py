"""`/v1/jobs`: training jobs, their metrics, telemetry and loss-landscape probes."""
