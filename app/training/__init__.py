"""Training: a class-folder dataset in, a bundle out. Imports TensorFlow (Keras) only when fitting."""
