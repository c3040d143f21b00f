"""What a training step and epoch are: the LightningModule, learning rates, the fine-tuning plan, EMA,
seeding, precision and the best/last checkpoint callbacks."""
