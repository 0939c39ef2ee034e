"""Training and evaluation recipes (outside the avdetect package)."""
