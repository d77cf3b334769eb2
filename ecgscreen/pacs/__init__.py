"""PACS integration: the AI results as DICOM (an SR and heatmap images) and the AI router.

``results`` builds the objects (highdicom) and ``multipart`` carries them over DICOMweb;
both are what the gateway's ``/report`` needs and import nothing else from this package.
The router (``router``, ``feeds``, ``state``, ``scp``, ``destinations``, ``telemetry``)
finds new ECGs in a PACS, sends them through the gateway's ``/report`` and stores the
answer back; it runs as ``ecgscreen pacs run``. Research use only, not for diagnosis.
"""
