"""Synthetic training data: class-conditional generation, judging, filtering (``task=synthesize``)."""
