"""Developer tools that are not part of the detr_ft package (run as `python -m tools.<name>`)."""
