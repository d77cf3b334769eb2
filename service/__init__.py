"""The BentoML gateway in front of Triton's ``ecg_screening`` ensemble."""
