"""Every read and write of weights and checkpoint files: the .ckpt file, a run's starting weights,
the official / Hugging Face / our key layouts, published weights by name, hostile-file checks, atomic writes."""
