"""Deployment: coding files with an exported model, TFLite and int8 encoders, physical
channel removal, TF-MOT pruning, cross-kernel decoding checks, timing of calls."""
