"""The training stage: settings (TrainConfig), the run directory, the fit loop with
checkpoints and resume, the SavedModel export, jobs side by side, the MNIST study."""
