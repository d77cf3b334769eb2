"""Where the results go: a DICOMweb PACS (STOW-RS) or a DICOM node (C-STORE).

Both take the gateway's ``/report`` answer as it came: STOW-RS posts the multipart body
unchanged; C-STORE unpacks it and sends each object over one association.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests
from pynetdicom import AE

from .multipart import decode_datasets
from .outcomes import Transient

__all__ = ["StowRs", "CStore", "parse_dicom_url"]

_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_DICOM_URL = re.compile(r"^dicom://(?P<aet>[^@/]{1,16})@(?P<host>[^:/]+):(?P<port>\d+)/?$")


class StowRs:
    """STOW-RS to ``{dicomweb_url}/studies``."""

    def __init__(self, session: requests.Session, dicomweb_url: str, timeout: float = 60.0) -> None:
        self.session = session
        self.url = dicomweb_url.rstrip("/") + "/studies"
        self.timeout = timeout

    def __str__(self) -> str:
        return f"STOW-RS {self.url}"

    def store(self, body: bytes, content_type: str) -> int:
        """Store the objects of a multipart/related body; how many the PACS took."""
        headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
        try:
            response = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Transient("stow_unreachable", type(exc).__name__) from None
        if response.status_code >= 300:
            raise Transient(f"stow_http_{response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if isinstance(answer, list):  # some servers wrap the one response in a list
            answer = answer[0] if answer else {}
        failed = (answer.get(_FAILED_SOP_SEQUENCE) or {}).get("Value") or []
        if failed:
            reasons = sorted({str((item.get("00081197") or {}).get("Value", ["?"])[0]) for item in failed})
            raise Transient("stow_refused", f"{len(failed)} objects, reason {','.join(reasons)}")
        return len((answer.get(_REFERENCED_SOP_SEQUENCE) or {}).get("Value") or []) or body.count(
            b"Content-Type: application/dicom"
        )


@dataclass(frozen=True)
class CStore:
    """C-STORE to a DICOM node (``dicom://AET@host:port``)."""

    called_aet: str
    host: str
    port: int
    calling_aet: str = "ECGSCREEN"
    timeout: float = 30.0

    def __str__(self) -> str:
        return f"C-STORE {self.called_aet}@{self.host}:{self.port}"

    def store(self, body: bytes, content_type: str) -> int:
        datasets = decode_datasets(body, content_type)
        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for sop_class in sorted({ds.SOPClassUID for ds in datasets}):
            ae.add_requested_context(sop_class)
        assoc = ae.associate(self.host, self.port, ae_title=self.called_aet)
        if not assoc.is_established:
            raise Transient("cstore_association_failed")
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                code = getattr(status, "Status", None)
                if code is None:
                    raise Transient("cstore_no_response")
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success or warning
                    raise Transient(f"cstore_status_0x{code:04X}")
        finally:
            assoc.release()
        return len(datasets)


def parse_dicom_url(text: str) -> CStore:
    """``dicom://AET@host:port`` as a :class:`CStore` destination."""
    match = _DICOM_URL.match(text)
    if not match:
        raise ValueError(f"{text!r} is not dicom://AET@host:port")
    return CStore(match["aet"], match["host"], int(match["port"]))
