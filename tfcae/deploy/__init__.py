"""Deployment: device targets (tfcae.deploy.device, the registered ones in
tfcae.deploy.targets; TFLite is tfcae.deploy.tflite) and host coding of their symbols,
int8 encoders, physical channel removal, TF-MOT pruning, cross-kernel decoding checks,
timing of calls."""
