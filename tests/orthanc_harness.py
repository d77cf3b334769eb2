"""A real PACS for tests: Debian's Orthanc 1.10 with its DICOMweb plugin, on free ports.

    from orthanc_harness import Orthanc

    with Orthanc(tmp_path) as pacs:
        pacs.store(Path("ecg.dcm").read_bytes())
        pacs.dicomweb_url  # http://127.0.0.1:PORT/dicom-web

It installs the Debian packages if needed (``scripts/ensure-debian-packages.sh orthanc
orthanc-dicomweb dicom3tools``; the package's own system service is never started), writes
a configuration (HTTP and DICOM ports picked free, storage in ``workdir``, HTTP answering
loopback only, no authentication, the DICOMweb plugin) and runs ``/usr/sbin/Orthanc
CONFIG.json`` as a managed child process (``ecgscreen.serving.procs``). ``stop()`` then ``start()``
brings the same PACS back on the same ports with the same storage: the router tests use it
to take the PACS away mid-run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
from servers import free_ports

from ecgscreen.serving.procs import ManagedServer, http_ok

__all__ = ["Orthanc", "ensure_orthanc", "dciodvfy", "ORTHANC_BINARY", "DICOMWEB_PLUGIN"]

REPO = Path(__file__).resolve().parents[1]
ENSURE_SCRIPT = REPO / "scripts" / "ensure-debian-packages.sh"
ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PACKAGES = ("orthanc", "orthanc-dicomweb", "dicom3tools")


def ensure_orthanc() -> None:
    """Install Orthanc, its DICOMweb plugin and dicom3tools when missing (idempotent)."""
    result = subprocess.run(
        ["bash", str(ENSURE_SCRIPT), *PACKAGES], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"could not install {' '.join(PACKAGES)}:\n{result.stdout}\n{result.stderr}")
    for path in (ORTHANC_BINARY, DICOMWEB_PLUGIN):
        if not path.exists():
            raise RuntimeError(f"{path} is missing after installing {' '.join(PACKAGES)}")


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) dicom3tools' ``dciodvfy`` reports for a DICOM file."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        ensure_orthanc()
        binary = shutil.which("dciodvfy")
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


class Orthanc(ManagedServer):
    """One Orthanc instance; a context manager. ``modalities`` ({name: (aet, port)}, on
    127.0.0.1) are the DICOM peers it may exchange with; C-STORE from anyone else is refused."""

    name = "Orthanc"

    def __init__(
        self, workdir: Path, modalities: dict[str, tuple[str, int]] | None = None, aet: str = "ORTHANC"
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.workdir / "orthanc.log")
        self.http_port, self.dicom_port = free_ports(2)
        self.aet = aet
        self.modalities = dict(modalities or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def write_config(self) -> Path:
        storage = self.workdir / "storage"
        config = {
            "Name": "ecgscreen-test",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "RemoteAccessAllowed": False,  # HTTP from loopback only
            "AuthenticationEnabled": False,
            "HttpCompressionEnabled": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{self.http_port}"},
            # Orthanc 1.10 listens for DICOM on every interface: accept C-STORE only from
            # the declared peers, on loopback.
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "DicomModalities": {
                name: {"AET": aet, "Host": "127.0.0.1", "Port": port, "AllowStore": True}
                for name, (aet, port) in self.modalities.items()
            },
            "ConcurrentJobs": 1,
            "SaveJobs": False,
        }
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def command(self) -> list[str]:
        if not ORTHANC_BINARY.exists() or not DICOMWEB_PLUGIN.exists() or shutil.which("dciodvfy") is None:
            ensure_orthanc()
        return [str(ORTHANC_BINARY), str(self.write_config())]

    def is_ready(self) -> bool:
        return http_ok(f"{self.url}/system")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # -- REST helpers for tests ----------------------------------------------------------------

    def store(self, data: bytes) -> str:
        """Store one DICOM file through the REST API; its Orthanc ID."""
        response = httpx.post(f"{self.url}/instances", content=data, timeout=30)
        response.raise_for_status()
        return response.json()["ID"]

    def get(self, path: str, **params):
        response = httpx.get(self.url + path, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def instance_count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])
