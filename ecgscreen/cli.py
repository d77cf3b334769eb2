"""The ``ecgscreen`` command line. The CLI owns the terminal: rich output, progress bars."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .leads import LAYOUTS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ECG-image screening: myocardial scar and LVEF<50 from a 12-lead ECG picture. "
    "Research use only, not for diagnosis.",
)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """ECG-image screening (research use only, not for diagnosis)."""


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _split_list(value: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not value:
        return allowed
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise typer.BadParameter(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return items


@app.command()
def synth(
    n: int = typer.Option(..., "--n", min=1, help="Number of ECGs to write."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same dataset."),
    out: Path = typer.Option(..., help="Output folder (files and labels.csv)."),
    difficulty: str = typer.Option("standard", help="easy | standard | hard"),
    formats: str = typer.Option(
        None, help="Comma-separated subset of: png,jpeg,pdf,dcm-pdf,dcm-sc,dcm-waveform"
    ),
    layouts: str = typer.Option(None, help="Comma-separated subset of: 3x4+1,6x2,12x1"),
    grids: str = typer.Option(None, help="Comma-separated subset of: red,pink,green,none"),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    save_signals: bool = typer.Option(False, help="Also write each raw signal as signals/NNNNNN.npy (mV)."),
) -> None:
    """Write N synthetic 12-lead ECGs (printouts, PDFs, DICOM) with their ground truth."""
    from .cohort import DIFFICULTIES
    from .printout import GRIDS
    from .synth import FORMATS, generate

    if difficulty not in DIFFICULTIES:
        raise typer.BadParameter(f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}")
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("synthesizing", total=n)
        labels = generate(
            n, seed, out, difficulty,
            formats=_split_list(formats, FORMATS, "format"),
            layouts=_split_list(layouts, LAYOUTS, "layout"),
            grids=_split_list(grids, GRIDS, "grid"),
            workers=workers or None,
            save_signals=save_signals,
            progress=lambda k: bar.advance(task, k),
        )  # fmt: skip
    elapsed = time.perf_counter() - start
    console.print(f"wrote {n} ECGs and {labels} in {elapsed:.1f} s ({n / elapsed:.1f}/s)")


@app.command()
def preprocess(
    files: list[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, help="ECG files (PNG, JPEG, TIFF, PDF, DICOM)."
    ),
    out: Path = typer.Option(..., help="Folder for the canonical model inputs (PNG)."),
    size: int = typer.Option(384, help="Canonical image size in pixels."),
) -> None:
    """Write each file's canonical model input as PNG and print its info as a JSON line.

    This is how to debug an archive: look at the PNGs, read the layout, rotation, grid,
    quality and warnings. Refused files print their reason; the exit code is 1 if any was.
    """
    import json

    from PIL import Image

    from .imaging.errors import IntakeError
    from .imaging.pipeline import preprocess as run

    out.mkdir(parents=True, exist_ok=True)
    refused = 0
    for path in files:
        try:
            result = run(path.read_bytes(), size=size)
        except IntakeError as error:
            refused += 1
            print(json.dumps({"file": str(path), **error.to_dict()}))
            continue
        target = out / f"{path.stem}.png"
        Image.fromarray(result.canonical).save(target)
        print(json.dumps({"file": str(path), "canonical": str(target), **result.info}))
    if refused:
        console.print(f"[red]{refused} of {len(files)} files refused[/red]")
        raise typer.Exit(1)


def _wait_for_signal(stop_when) -> None:
    """Block until SIGINT/SIGTERM (or ``stop_when()`` turns true)."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if stop_when():
            break


@app.command()
def triton(
    repository: Path = typer.Option(None, help="Model repository (default: the bundled model_repository)."),
    http_port: int = typer.Option(None, help="HTTP port (env ECGSCREEN_TRITON_HTTP_PORT, default 8000)."),
    grpc_port: int = typer.Option(None, help="gRPC port (env ECGSCREEN_TRITON_GRPC_PORT, default 8001)."),
    metrics_port: int = typer.Option(
        None, help="Metrics port (env ECGSCREEN_TRITON_METRICS_PORT, default 8002)."
    ),
    log_file: Path = typer.Option(None, help="Write tritonserver's log here (default: discard)."),
) -> None:
    """Run the embedded Triton (CPU config) until Ctrl-C / SIGTERM."""
    from .triton_server import DEFAULT_REPOSITORY, EmbeddedTriton, TritonPorts

    server = EmbeddedTriton(
        repository or DEFAULT_REPOSITORY,
        TritonPorts.from_env(http_port, grpc_port, metrics_port),
        log_file=log_file,
    )
    with console.status("starting tritonserver (models loading)..."):
        server.start()
    console.print(
        f"Triton ready: HTTP {server.http_url}  gRPC {server.grpc_url}  metrics {server.metrics_url}\n"
        "Ensemble: ecg_screening (input ECG_BYTES). Ctrl-C to stop."
    )
    try:
        _wait_for_signal(lambda: server.process is None or server.process.poll() is not None)
    finally:
        server.stop()
        console.print("Triton stopped.")


@app.command()
def serve(
    port: int = typer.Option(3000, help="Gateway HTTP port."),
    http_port: int = typer.Option(
        None, help="Triton HTTP port (env ECGSCREEN_TRITON_HTTP_PORT, default 8000)."
    ),
    grpc_port: int = typer.Option(
        None, help="Triton gRPC port (env ECGSCREEN_TRITON_GRPC_PORT, default 8001)."
    ),
    metrics_port: int = typer.Option(
        None, help="Triton metrics port (env ECGSCREEN_TRITON_METRICS_PORT, default 8002)."
    ),
    workers: int = typer.Option(2, help="Gateway worker processes."),
    log_dir: Path = typer.Option(
        None, help="Write tritonserver.log and gateway.log here (default: discard)."
    ),
) -> None:
    """Run the whole service: embedded Triton (CPU) + the BentoML gateway, until Ctrl-C."""
    from .serve import PROJECT_ROOT, start_service
    from .triton_server import TritonPorts

    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    with console.status("starting tritonserver and the gateway..."):
        triton, gateway = start_service(
            port, TritonPorts.from_env(http_port, grpc_port, metrics_port), workers=workers, log_dir=log_dir
        )
    sample = PROJECT_ROOT / "samples" / "ecg_3x4.pdf"
    console.print(
        f"[bold green]ecgscreen is ready[/bold green] at {gateway.url}  (research use only, not for diagnosis)\n"
        f"  Triton: gRPC {triton.grpc_url}, HTTP {triton.http_url}, metrics {triton.metrics_url}\n"
        f"  Try:  curl -F file=@{sample} {gateway.url}/predict\n"
        f"        curl -F file=@{sample} -F task=scar {gateway.url}/explain -o heatmap.png\n"
        "  Ctrl-C to stop.",
        soft_wrap=True,
    )
    try:
        _wait_for_signal(
            lambda: any(p.process is None or p.process.poll() is not None for p in (triton, gateway))
        )
    finally:
        gateway.stop()
        triton.stop()
        console.print("stopped.")


@app.command()
def predict(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="ECG file (PNG, JPEG, TIFF, PDF, DICOM)."
    ),
    clinical: str = typer.Option(None, help='Clinical features as JSON, e.g. \'{"age": 64, "dm": 1}\'.'),
    url: str = typer.Option("http://127.0.0.1:3000", envvar="ECGSCREEN_URL", help="Gateway URL."),
    token: str = typer.Option(
        None, envvar="ECGSCREEN_API_TOKEN", help="Bearer token, if the gateway requires one."
    ),
    explain: Path = typer.Option(None, help="Also save the scar heatmap PNG here."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for an answer."),
) -> None:
    """Send one ECG to a running gateway and print its answer (JSON)."""
    import json

    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    form = {"clinical": clinical} if clinical else {}
    with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
        try:
            response = client.post("/predict", files={"file": (file.name, file.read_bytes())}, data=form)
        except httpx.HTTPError as error:
            console.print(f"[red]cannot reach {url}: {error}[/red]")
            raise typer.Exit(2) from None
        print(json.dumps(response.json(), indent=2))
        if response.status_code != 200:
            raise typer.Exit(1)
        if explain:
            heatmap = client.post(
                "/explain", files={"file": (file.name, file.read_bytes())}, data={"task": "scar"}
            )
            explain.write_bytes(heatmap.content)
            console.print(f"heatmap written to {explain}")


if __name__ == "__main__":
    app()
