"""Intake: any ECG file in (image, PDF, DICOM), the canonical model input out."""
