"""`/v1/jobs/{id}/events`: a job's progress, metrics and status changes as Server-Sent Events."""
