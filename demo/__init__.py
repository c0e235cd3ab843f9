"""The tiny demo model: procedural data, training scripts, evaluation and the `demo` command."""
