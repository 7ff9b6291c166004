"""The methods, each contributing loss terms and training hooks to the objective seam:
D-CO/R-CO, ADMM latent pruning (CAE-P), bottleneck decorrelation, and structured sparsity
(projections, kernel constraints, double descent)."""

# Importing a method registers it (tfcae.methods.registry.METHODS); the order of these
# imports is the order in which build_objective applies them.
from tfcae.methods import dco, decorrelation, admm, double_descent  # noqa: E402,F401
