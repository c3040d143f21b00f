"""The set loss: Hungarian matching, the criterion, its sigmoid and training-only terms."""
