"""The synthetic ECG generator: signals with pathology written in, a cohort, the printouts carts
make, scan/photo artefacts, and the PNG / JPEG / PDF / DICOM files a clinic holds
(``generate``: ``ecgscreen synth``)."""
