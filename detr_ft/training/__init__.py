"""What runs a training job, wired by `detr_ft.train.train(cfg)` through Hydra, by concern: loop/ (the
LightningModule and what each step and epoch does), evaluation/ (COCO metrics), reports/ (what a run tells its
user), guards/ (what stops or protects a run), feature_cache/ (the frozen backbone's features computed once).
"""
