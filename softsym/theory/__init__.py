"""What is known about a result: derived bounds, their certification, and start conditions."""
