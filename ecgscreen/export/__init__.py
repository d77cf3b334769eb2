"""Into the Triton model repository: the ONNX export and its model card, the import of the
study's own checkpoint, and the demo model's recipe."""
