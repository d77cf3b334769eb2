"""The router's DICOM door: a C-STORE SCP (pynetdicom) for carts and PACS that push.

A received object is written to the spool folder as it came (no re-encoding) and taken on
in the state as ``pending`` before the sender hears "success": a restart loses nothing. The
router's workers then treat it like an object found in a PACS and send the results to the
configured destination. Non-ECG objects are accepted and recorded as refused (a sender that
keeps getting failures retries forever); the router's own results are accepted and dropped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from .selection import ECG, NOT_ECG, OWN, classify
from .state import State

__all__ = ["StoreSCP", "spool_name"]

log = logging.getLogger("ecgscreen.pacs")

_SUCCESS = 0x0000
_OUT_OF_RESOURCES = 0xA700


def spool_name(sop_instance_uid: str) -> str:
    """A file name that says nothing about the patient."""
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32] + ".dcm"


class StoreSCP:
    def __init__(self, state: State, spool: Path, ae_title: str = "ECGSCREEN", on_refused=None) -> None:
        self.state = state
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.ae = AE(ae_title=ae_title)
        for context in AllStoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)
        self.on_refused = on_refused or (lambda reason: None)
        self.server = None

    def start(self, host: str, port: int) -> StoreSCP:
        self.server = self.ae.start_server(
            (host, port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        return self

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def _on_store(self, event) -> int:
        try:
            ds = event.dataset
            uid = str(ds.get("SOPInstanceUID", ""))
            verdict = classify(
                str(ds.get("SOPClassUID", "")),
                str(ds.get("Modality", "")),
                str(ds.get("Manufacturer", "")),
                str(ds.get("SeriesDescription", "")),
            )
            if verdict.kind == OWN or not uid:
                return _SUCCESS
            study, series, sop_class = (
                str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID")
            )
            if verdict.kind != ECG:
                if self.state.add(
                    uid, study, series, sop_class, "scp", refused_reason=f"{NOT_ECG}: {verdict.detail}"
                ):
                    self.on_refused(NOT_ECG)
                return _SUCCESS
            if self.state.get(uid) is not None:  # sent again: already taken on
                return _SUCCESS
            path = self.spool / spool_name(uid)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(event.encoded_dataset(include_meta=True))
            os.replace(temporary, path)
            # Sent twice at once, both write the same bytes to the same file: keep it.
            self.state.add(uid, study, series, sop_class, "scp", time.time(), spool_path=str(path))
            return _SUCCESS
        except Exception as exc:  # the sender retries; the log says what failed, not what was sent
            log.error("C-STORE could not be taken on (%s)", type(exc).__name__)
            return _OUT_OF_RESOURCES
