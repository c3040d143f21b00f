"""detr_ft: fine-tune DETR object detectors with Hydra, Lightning and MLflow."""
