"""COCO metrics gathered across processes, per-class AP, the confusion matrix and the best epoch's pictures."""
