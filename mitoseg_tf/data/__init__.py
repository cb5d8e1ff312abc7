"""Datasets for mitotic-figure segmentation."""
