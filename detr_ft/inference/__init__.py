"""A checkpoint run on images: the detector, a folder of images predicted, the MLflow pyfunc model
(loaded from code: nothing is unpickled) and how a run logs it."""
