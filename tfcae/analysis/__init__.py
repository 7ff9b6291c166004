"""Analysis of trained models: parameters, zeros, MACs and memory per layer."""
