"""The mutations `python -m tools.mutate` tries: realistic one-line bugs in the lines that carry a promise.

Each `original` must occur exactly once in its file (else the mutation is reported as not applying, e.g.
after a refactor: update the snippet). `tests` are the folders where a test of that promise belongs;
they keep a run bounded (a surviving mutant costs a full run of its tests).
"""

from dataclasses import dataclass

MODEL = ("tests/model",)
DATA = ("tests/data",)
WEIGHTS = ("tests/model", "tests/training")  # the model's parts, and train() using them
TRAINING = ("tests/training",)  # what train(cfg) does with the config
# What a run leaves behind for MLflow, sweepers and later runs, by the files that hold its tests: on the whole of
# tests/training + tests/cli such a mutant ran past the timeout on 2 loaded cores (its killer sits in tests/cli).
RUN_RECORD = ("tests/training/test_mlflow_record.py", "tests/training/test_strategy_tag_honest.py")
MODEL_REGISTRY = ("tests/cli/test_mlflow_model.py",)
RECIPE = ("tests/training/test_recipe.py",)


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the repository root
    original: str
    replacement: str
    breaks: str  # the promise this bug breaks, in one line
    tests: tuple[str, ...] = ("tests",)


MUTATIONS = [
    # ---- the breaks listed in the issue -------------------------------------------------------------
    Mutation(
        "class_head_keeps_source_rows",
        "detr_ft/checkpoints/weight_loading.py",
        "            del state[key]\n            report.reinitialized.append(key)",
        "            state[key] = torch.cat([state[key], target[key]])[: len(target[key])]  # keep what fits\n"
        "            report.reinitialized.append(key)",
        "a class head of another size is re-initialised, not filled with the source checkpoint's rows",
        WEIGHTS,
    ),
    Mutation(
        "no_horizontal_flip",
        "detr_ft/data/transforms.py",
        "v2.Compose([v2.RandomHorizontalFlip(0.5), resize, *_finish()])",
        "v2.Compose([resize, *_finish()])",
        "training images are flipped horizontally at random (the paper's augmentation)",
        DATA,
    ),
    Mutation(
        "single_train_scale",
        "detr_ft/data/transforms.py",
        "resize = RandomShorterSide(scales, max_size)",
        "resize = RandomShorterSide(scales[:1], max_size)",
        "training resizes the shorter side to one of all the configured scales (multi-scale)",
        DATA,
    ),
    Mutation(
        "no_random_crop",
        "detr_ft/data/transforms.py",
        "crop: bool = True, crop_probability: float = 0.5",
        "crop: bool = True, crop_probability: float = 0.0",
        "half of the training images go through resize + random crop (the paper's augmentation)",
        DATA,
    ),
    Mutation(
        "backbone_lr_default",
        "detr_ft/config/schema.py",
        "else 0.1 * float(head)",
        "else 1.0 * float(head)",
        "the backbone's learning rate defaults to 0.1 x train.learning_rate",
        TRAINING,
    ),
    Mutation(
        "lr_drop_epochs_not_passed",
        "conf/config.yaml",
        "    lr_drop_epochs: ${train.lr_drop_epochs}",
        "    lr_drop_epochs: []",
        "train.lr_drop_epochs reaches the learning-rate schedule",
        TRAINING,
    ),
    Mutation(
        "warmup_steps_not_passed",
        "conf/config.yaml",
        "    warmup_steps: ${train.warmup_steps}",
        "    warmup_steps: 0",
        "train.warmup_steps reaches the learning-rate schedule",
        TRAINING,
    ),
    Mutation(
        "gradient_clip_dropped",
        "conf/trainer/default.yaml",
        "gradient_clip_val: ${train.gradient_clip_val}",
        "gradient_clip_val: null",
        "train.gradient_clip_val clips the gradients",
        TRAINING,
    ),
    Mutation(
        "eos_coef_ignored",
        "detr_ft/model/loss/criterion.py",
        "        class_weight[-1] = eos_coef\n",
        "",
        "the no-object class is down-weighted by eos_coef in the classification loss",
        WEIGHTS,
    ),
    Mutation(
        "seed_not_set",
        "detr_ft/train.py",
        "        pl.seed_everything(cfg.train.seed, workers=True)\n",  # inside train()'s `with` block
        "",
        "train.seed makes a run reproducible",
        TRAINING,
    ),
    Mutation(
        "monitor_mode_swapped",
        "detr_ft/training/loop/monitor.py",
        'return "min" if "loss" in monitor else "max"',
        'return "max" if "loss" in monitor else "min"',
        "the best checkpoint has the highest val/mAP (lowest loss when a loss is monitored)",
        TRAINING,
    ),
    Mutation(
        "precision_ignored",
        "conf/trainer/default.yaml",
        "precision: ${precision:${train.precision},${.accelerator}}",
        'precision: "32"',
        "train.precision reaches the Trainer",
        TRAINING,
    ),
    Mutation(
        "overwrite_check_not_called",
        "detr_ft/train.py",
        "        refuse_to_overwrite(run_dir, resuming=bool(cfg.train.resume_from))\n",  # inside train()'s `with` block
        "",
        "a run folder that already holds checkpoints is never trained into",
        TRAINING,
    ),
    Mutation(
        "mlflow_reference_as_path",
        "detr_ft/tracking/lookup.py",
        'return reference.startswith(("runs:/", "models:/")) or bool(_RUN_ID.match(reference))',
        'return reference.startswith("runs:/") or bool(_RUN_ID.match(reference))',
        "train.checkpoint_path and predict's checkpoint accept models:/NAME@alias, as they do runs:/",
        MODEL_REGISTRY,
    ),
    Mutation(
        "alias_moves_to_a_worse_model",
        "detr_ft/tracking/registry.py",
        "if stored is not None and value <= float(stored):",
        "if stored is not None and value >= float(stored):",
        "a sweep moves the registry's @best alias only to a model that beats it",
        MODEL_REGISTRY,
    ),
    Mutation(
        "dataset_digest_not_of_content",
        "detr_ft/tracking/datasets.py",
        "return digest.hexdigest()[:DIGEST_LENGTH]",
        "return digest.hexdigest()[-DIGEST_LENGTH:]",
        "a run's dataset inputs carry the sha256 of their annotation files",
        MODEL_REGISTRY,
    ),
    Mutation(
        "pyfunc_ignores_threshold",
        "detr_ft/inference/pyfunc_model.py",
        'threshold = float((params or {}).get("threshold", DEFAULT_THRESHOLD))',
        "threshold = DEFAULT_THRESHOLD",
        "the logged model's predict keeps the detections scoring at least params['threshold']",
        MODEL_REGISTRY,
    ),
    Mutation(
        "run_id_gives_last_checkpoint",
        "detr_ft/tracking/lookup.py",
        'best = run.data.tags.get("best_checkpoint")',
        'best = run.data.tags.get("last_checkpoint")',
        "a bare MLflow run id as train.checkpoint_path means that run's best checkpoint",
        RUN_RECORD + MODEL_REGISTRY,
    ),
    Mutation(
        "weights_skipped_on_new_class_head",
        "detr_ft/checkpoints/weight_loading.py",
        "    model.load_state_dict(usable, strict=False)\n",
        "    if not report.reinitialized:  # nothing to fine-tune from\n"
        "        model.load_state_dict(usable, strict=False)\n",
        "fine-tuning onto other classes still starts from the checkpoint's weights (all but the class head)",
        WEIGHTS,
    ),
    Mutation(
        "schedule_tag_dropped",
        "detr_ft/training/loop/finetuning.py",
        '{"strategy": ran.kind, "schedule": ran.describe(), **auto_tags}',
        '{"strategy": ran.kind, **auto_tags}',
        "the MLflow run carries the tag `schedule`",
        RUN_RECORD,
    ),
    Mutation(
        "lr_groups_logged_as_one",
        "detr_ft/training/loop/module.py",
        'self.log(f"lr/{group[\'name\']}", group["lr"], on_step=True, on_epoch=False)',
        'self.log("lr", group["lr"], on_step=True, on_epoch=False)',
        "each optimizer group's learning rate is logged as lr/<group>",
        RUN_RECORD,
    ),
    Mutation(
        "trainable_stages_not_logged",
        "detr_ft/training/loop/module.py",
        '        self.log("backbone/trainable_stages", float(len(stages)), on_step=False, on_epoch=True)\n',
        "",
        "the number of training backbone stages is logged as backbone/trainable_stages",
        RUN_RECORD,
    ),
    Mutation(
        "size_metrics_dropped",
        "detr_ft/training/evaluation/coco_scores.py",
        '"mAP75": 2, "mAP_small": 3, "mAP_medium": 4, "mAP_large": 5, "AR100": 8}',
        '"mAP75": 2, "AR100": 8}',
        "val/mAP_small, val/mAP_medium and val/mAP_large are logged",
        RUN_RECORD,
    ),
    Mutation(
        "sweeper_gets_none",
        "detr_ft/train.py",
        "    return summary.best_value  # what a Hydra sweeper",
        "    return None  # what a Hydra sweeper",
        "main() returns the monitored best value to a Hydra sweeper (Optuna)",
        RECIPE,
    ),
    Mutation(
        "hf_shortcut_conv_misnamed",
        "detr_ft/checkpoints/weight_layouts.py",
        'lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0.",',
        'lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1.",',
        "Hugging Face native-ResNet shortcut convolutions load into downsample.0",
        MODEL,
    ),
    Mutation(
        "official_class_embed_misnamed",
        "detr_ft/checkpoints/weight_layouts.py",
        '(r"^class_embed\\.", "class_head."),',
        '(r"^class_embed\\.", "class_embed."),',
        "the official release's class_embed loads into our class_head",
        MODEL,
    ),
    # ---- lines that carry the DETR recipe ------------------------------------------------------------
    Mutation(
        "matcher_giou_sign",
        "detr_ft/model/loss/matcher.py",
        "cost = cost - self.cost_giou * giou",
        "cost = cost + self.cost_giou * giou",
        "the matcher prefers queries whose boxes overlap a target more (cost -GIoU)",
        MODEL,
    ),
    Mutation(
        "matcher_no_class_cost",
        "detr_ft/model/loss/matcher.py",
        "cost = -self.cost_class * class_probs",
        "cost = torch.zeros_like(class_probs)",
        "the matcher weighs each query's probability of the target's class (cost_class)",
        MODEL,
    ),
    Mutation(
        "aux_losses_not_counted",
        "detr_ft/model/loss/criterion.py",
        'losses["loss"] = (per_layer * self.term_weights).sum()',
        'losses["loss"] = (per_layer[:1] * self.term_weights).sum()',  # the main output's terms only
        "the auxiliary decoder layers' losses count in the total",
        MODEL,
    ),
    Mutation(
        "aux_losses_unweighted",
        "detr_ft/model/loss/criterion.py",
        'losses["loss"] = (per_layer * self.term_weights).sum()',
        'losses["loss"] = (per_layer[:1] * self.term_weights).sum() + per_layer[1:].sum()',  # aux weighted 1
        "auxiliary terms share their base term's weight (1/5/2)",
        MODEL,
    ),
    Mutation(
        "num_boxes_is_batch_size",
        "detr_ft/model/loss/criterion.py",
        "return max(count, 1.0)",
        "return float(max(len(targets), 1))",
        "box losses are averaged over the batch's target boxes, not its images",
        MODEL,
    ),
    Mutation(
        "unfreeze_one_epoch_late",
        "detr_ft/training/loop/finetuning.py",
        "epoch >= self.start_epochs[s]]",
        "epoch > self.start_epochs[s]]",
        "unfreeze_backbone_at_epoch=N trains the backbone from the start of epoch N",
        TRAINING,
    ),
    Mutation(
        "unfreeze_warmup_from_step_zero",
        "detr_ft/training/loop/lr_schedule.py",
        "max(0, step - unfreeze_step + 1) / self.unfreeze_warmup_steps",
        "max(0, step + 1) / self.unfreeze_warmup_steps",
        "a stage's learning rate warms up from the step it unfreezes, not from the start of training",
        TRAINING,
    ),
    Mutation(
        "lr_drop_one_epoch_early",
        "detr_ft/training/loop/lr_schedule.py",
        "sum(epoch >= drop for drop in self.lr_drop_epochs)",
        "sum(epoch >= drop - 1 for drop in self.lr_drop_epochs)",
        "the lr drop factor applies from each drop epoch on, not once more in the epoch before",
        TRAINING,
    ),
    Mutation(
        "frozen_stages_get_lr",
        "detr_ft/training/loop/module.py",
        "trainable = set(self.model.backbone.unfrozen_stages)",
        "trainable = set(self.model.backbone.trainable_stages)",
        "a frozen backbone stage's optimizer group has learning rate 0",
        TRAINING,
    ),
    Mutation(
        "postprocess_drops_first_class",
        "detr_ft/model/postprocess.py",
        'probs = outputs["pred_logits"].softmax(-1)[..., :-1]',
        'probs = outputs["pred_logits"].softmax(-1)[..., 1:]',
        "postprocessing drops the no-object column (the last), keeping every real class",
        TRAINING,
    ),
    Mutation(
        "coco_results_use_labels",
        "detr_ft/model/postprocess.py",
        '"category_id": category_map.category_id_of(label),',
        '"category_id": label,',
        "COCO results name the annotation file's category ids, not our contiguous labels",
        TRAINING,
    ),
    Mutation(
        "best_detections_every_epoch",
        "detr_ft/training/evaluation/coco_evaluation.py",
        "        if not self.best.offer(float(value), trainer.current_epoch):\n            return\n",
        "        self.best.offer(float(value), trainer.current_epoch)\n",
        "val_detections_best.json holds the best epoch's detections, not the last epoch's",
        RECIPE + ("tests/cli/test_cli.py",),
    ),
    Mutation(
        "per_class_ap50_at_iou_055",
        "detr_ft/training/evaluation/per_class.py",
        "ap50 = _mean_of_defined(precision[0, :, k, 0, -1])",
        "ap50 = _mean_of_defined(precision[1, :, k, 0, -1])",
        "per-class AP50 is read at IoU 0.5 from COCOeval's precision array",
        TRAINING,
    ),
    Mutation(
        "gather_keeps_padded_duplicates",
        "detr_ft/training/evaluation/rank_gathering.py",
        "kept.append(part[~torch.isin(image_ids, seen)])",
        "kept.append(part)",
        "under DDP an image the sampler gave to two ranks is scored once",
        TRAINING,
    ),
    Mutation(
        "flip_always",
        "detr_ft/data/transforms.py",
        "v2.RandomHorizontalFlip(0.5)",
        "v2.RandomHorizontalFlip(1.0)",
        "a training image is flipped with probability 0.5, not always",
        DATA,
    ),
    Mutation(
        "eval_uses_train_transforms",
        "detr_ft/data/datamodule.py",
        "self.eval_transforms = make_eval_transforms(eval_scale, max_size)",
        "self.eval_transforms = make_train_transforms(list(train_scales), max_size, crop)",
        "validation images get one fixed resize (eval_scale), not the training scales, flips and crops",
        DATA,
    ),
    # ---- EMA of the weights and early stopping (issue 12) ---------------------------------------------
    Mutation(
        "ema_without_warmup",
        "detr_ft/training/loop/ema.py",
        "        if self.warmup_steps == 0:\n            return self.decay",
        "        if True:\n            return self.decay",
        "the EMA decay warms up as decay * (1 - exp(-t / train.ema_warmup_steps))",
        ("tests/training/loop/test_ema.py",),
    ),
    Mutation(
        "ema_averages_frozen_parameters",
        "detr_ft/training/loop/ema.py",
        "trainable = tuple(name for name, p in self.model.named_parameters() if p.requires_grad)",
        "trainable = tuple(name for name, p in self.model.named_parameters())",
        "frozen parameters are left out of the EMA, and a stage unfrozen later starts from its own weights",
        ("tests/training/loop/test_ema.py",),
    ),
    Mutation(
        "validation_scores_raw_weights",
        "detr_ft/training/loop/ema.py",
        "        if self.average is not None and not self._swapped:",
        "        if False:",
        "with EMA on, validation (val/*, the best checkpoint) scores the EMA weights",
        ("tests/training/loop/test_ema.py",),
    ),
    Mutation(
        "checkpoint_read_ignores_ema",
        "detr_ft/checkpoints/checkpoint_file.py",
        '            state |= contents[EMA]["weights"]',
        "            pass",
        "predict, export and fine-tuning read a run's EMA weights from its checkpoint",
        ("tests/training/loop/test_ema.py",),
    ),
    Mutation(
        "early_stop_before_min_epochs",
        "conf/trainer/default.yaml",
        "min_epochs: ${train.early_stopping_min_epochs}",
        "min_epochs: null",
        "early stopping never stops before train.early_stopping_min_epochs epochs have run",
        ("tests/training/guards/test_early_stopping.py",),
    ),
    # ---- issue 23: faults (signals, one run per folder, bad values and files) ------------------------------
    Mutation(
        "signal_exits_zero",
        "detr_ft/training/guards/signals.py",
        "            raise SystemExit(EXIT_CODES[self.signal_name]) from None",
        "            raise SystemExit(0) from None",
        "SIGTERM / Ctrl-C exit 143 / 130, not 0, so a scheduler sees the run did not finish",
        ("tests/cli/test_faults_signals.py",),
    ),
    Mutation(
        "run_lock_shared",
        "detr_ft/training/guards/run_lock.py",
        "        lock.acquire()",
        "        lock = FileLock(f'{folder / LOCK_FILE}.{os.getpid()}', timeout=0); lock.acquire()",
        "a second run on a folder in use stops at once, naming the other run's pid",
        ("tests/training/guards/test_run_folder_lock.py",),
    ),
    Mutation(
        "negative_learning_rate_accepted",
        "detr_ft/config/value_checks.py",
        '    "learning_rate": (0, True, "e.g. 1e-4; 0 trains nothing"),',
        '    "learning_rate": (-1, True, "e.g. 1e-4; 0 trains nothing"),',
        "an impossible train.learning_rate stops before any data is read, naming the key",
        ("tests/cli/test_faults_config.py",),
    ),
    Mutation(
        "random_bytes_called_code",
        "detr_ft/checkpoints/signature.py",
        '    if head[:1] == b"\\x80":  # a pickle: torch\'s legacy format',
        "    if True:",
        "a file that is no checkpoint is named so, not refused as pickled code",
        ("tests/checkpoints/test_not_a_checkpoint.py",),
    ),
    # ---- training-only aids (model/query_groups.py, model/loss/training_losses.py, model/loss/iou_aware.py) ----
    Mutation(
        "query_groups_see_each_other",
        "detr_ft/model/query_groups.py",
        "        attended = attend(q, v)",
        "        attended = attend(x_pos, x)[start:end] if count == 1 else attend(q, v)",
        "training-only query blocks attend only within themselves: no group or block sees another",
        ("tests/model/test_query_groups.py",),
    ),
    Mutation(
        "groups_not_repeating_targets",
        "detr_ft/model/loss/matcher.py",
        "        return self.of(self.labels.repeat_interleave(k, 0), self.boxes.repeat_interleave(k, 0), repeat)",
        "        return self.of(self.labels.repeat(k, 1), self.boxes.repeat(k, 1, 1), repeat)",
        "each group of an image is matched to that image's own targets",
        ("tests/model/test_query_groups.py",),
    ),
    Mutation(
        "iou_aware_no_object_share",
        "detr_ft/model/loss/iou_aware.py",
        "quality * log_class + (1 - quality) * log_none",
        "quality * log_class + quality * log_none",
        "an IoU-aware target puts 1 - quality on no-object",
        ("tests/model/test_query_groups.py",),
    ),
]
