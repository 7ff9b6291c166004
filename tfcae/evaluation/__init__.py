"""Evaluation: rate-distortion of learned and classical codecs on image sets, BD-rate,
CompressAI-layout results, plots."""
