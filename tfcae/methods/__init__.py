"""The methods, each contributing loss terms and training hooks to the objective seam:
D-CO/R-CO, ADMM latent pruning (CAE-P), bottleneck decorrelation, and structured sparsity
(projections, kernel constraints, double descent)."""
