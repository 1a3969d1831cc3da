"""`/v1/compare`: jobs side by side, against a baseline."""
