"""``ecgscreen screen``: an archive of ECG files through Triton, one CSV row per file.

``sources`` finds the files (a folder, a list file or a ``labels.csv``), ``ledger`` is the
results CSV (append-only, flushed per row, so a run can stop anywhere and resume), ``client``
talks to Triton's ensemble over gRPC, ``outputs`` writes heatmaps and DICOM results, and
``runner`` puts them together with a progress bar and a summary.
"""
