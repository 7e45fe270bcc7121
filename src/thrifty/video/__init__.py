"""Tempo-style long-video compression: segmenting, adaptive token allocation and a synthetic needle benchmark."""
