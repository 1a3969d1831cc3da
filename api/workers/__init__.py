"""`/v1/workers`: the worker processes, their queues and devices, and what they are training."""
