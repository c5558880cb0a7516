"""Training: datasets, the three phases, evaluation and reports (imports TensorFlow lazily)."""
