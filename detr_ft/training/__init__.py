"""What runs a training job, one concern per file, wired by `detr_ft.train.train(cfg)` through Hydra:

- `module.py`: the LightningModule (training/validation steps, optimizer groups, metric logging only);
- `lr_schedule.py`: every group's learning rate as a pure function of (step, epoch, unfreeze step);
- `finetuning.py`: the guide's freeze/unfreeze keys as a per-stage plan, and the callback applying it
  (not `strategy`: Lightning owns that word);
- `ema.py`: the EMA of the weights (`train.ema_decay`), validated with and stored in every checkpoint;
- `early_stopping.py`: early stopping on the monitored metric, and why a run stopped;
- `monitor.py`: which direction of the monitored metric is better, and the best value so far;
- `checkpoint_file.py`: the ONE owner of the `.ckpt` file (what it holds and how it is written and read
  back for resume, fine-tuning, predict and export; the EMA entry; the stored config and class names);
- `checkpoint_callbacks.py`: the best/last checkpoint callbacks, the run metadata, the atomic writer plugin;
- `run_folder.py`: a run folder is never overwritten, and is writable with room for its checkpoints;
- `initial_weights.py`: `train.checkpoint_path` (file, MLflow run id, `runs:/`) into the model;
- `metrics_csv.py`: `<run_dir>/metrics.csv` through Lightning's CSVLogger;
- `startup_report.py`: objects per train image against the model's query count, at fit start;
- `evaluation.py` + `detections.py`: COCO metrics gathered across ranks, the best epoch's detections JSON;
- `pictures.py`: drawing detections, and the per-epoch prediction-picture callback;
- `summary.py`: the end-of-run table, from the trainer's metrics and the checkpoint callbacks' state;
- `seeding.py`: dropout's generators reseeded per batch from (seed, epoch, batch, rank): exact resume;
- `precision.py`: `train.precision=auto` (bf16-mixed where the hardware has native bf16, else fp32);
- `divergence.py`: a non-finite loss or prediction stops the run, saying where and what to change.

Floors import only downwards: training/ uses model/, data/ and tracking; model/ and data/ know nothing of
Lightning's checkpoint layout, Hydra or MLflow.
"""
