"""The "models from code" file of a logged detr_ft model: MLflow copies it into the model and runs it to load
the model, so nothing is unpickled. It only names the class (pyfunc_model.py); importing it elsewhere just
sets MLflow's current model."""

from mlflow.models import set_model

from detr_ft.inference.pyfunc_model import DetectorModel

set_model(DetectorModel())
