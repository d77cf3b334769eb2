"""Training and evaluation: config, data (a cache of canonical images), augmentation, the
training loop, checkpoints, calibration, the study's metrics and the predictors that run a
checkpoint or the exported ONNX."""
