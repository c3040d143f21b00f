"""What stops or protects a run: divergence, early stopping, signals, the run folder and its lock."""
