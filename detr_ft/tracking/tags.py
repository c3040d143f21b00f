"""The tag names detr_ft's runs carry beyond their training tags, shared by the sweep parent, the look-up and
the comparison."""

KIND_TAG = "detr_ft.kind"  # "comparison" (detr_ft.compare) or "sweep" (a multirun's parent run)
SWEEP_KIND = "sweep"
COMPARISON_KIND = "comparison"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a sweep's jobs under their parent
