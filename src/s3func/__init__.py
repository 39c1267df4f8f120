"""s3func."""
