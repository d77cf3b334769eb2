"""ECG-image screening: synthetic data, intake, network, serving."""
