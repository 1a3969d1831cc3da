"""`/v1/datasets`: upload, list and delete datasets of one's own."""
