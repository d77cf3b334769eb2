"""Write the bundled sample ECGs (synthetic) into samples/: one per common file type.

python scripts/make_samples.py
"""

from dataclasses import replace
from pathlib import Path

from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.printout import PrintStyle
from ecgscreen.synth.scan import ScanArtefacts

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def main() -> None:
    SAMPLES.mkdir(exist_ok=True)
    record = make_record(20241124, 13)  # a patient with anterior scar and reduced EF
    scan = ScanArtefacts(
        kind="scan", rotation_deg=1.5, blur_px=0.5, noise_sd=3.0, cast=(0.99, 0.97, 0.93), seed=7
    )
    variants = {
        "ecg_3x4.pdf": replace(record, file_format="pdf", style=PrintStyle("3x4+1", "red")),
        "ecg_6x2_scan.jpg": replace(
            record, file_format="jpeg", style=PrintStyle("6x2", "pink"), artefacts=scan, dpi=125
        ),
        "ecg_waveform.dcm": replace(record, file_format="dcm-waveform"),
    }
    for name, variant in variants.items():
        (SAMPLES / name).write_bytes(encode_record(variant))
        print(f"wrote samples/{name}")
    p = record.patient
    print(f"truth: scar={int(p.scar)} ({p.territory}), lvef={p.lvef}")


if __name__ == "__main__":
    main()
