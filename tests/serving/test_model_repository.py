"""Every Triton config parses with Triton's own schema, and the ensemble's wiring agrees."""

from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
CONFIGS = sorted(REPOSITORY.glob("*/config.pbtxt")) + sorted(REPOSITORY.glob("*/configs/*.pbtxt"))


def load(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())  # strict: unknown fields raise


def tensors(config: mc.ModelConfig, kind: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    return {t.name: (t.data_type, tuple(t.dims)) for t in getattr(config, kind)}


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPOSITORY)) for p in CONFIGS])
def test_config_parses_with_tritons_schema(path):
    config = load(path)
    assert config.name == path.parent.name if path.name == "config.pbtxt" else path.parent.parent.name
    assert config.max_batch_size > 0


def test_repository_has_the_four_models_and_the_cpu_variants():
    assert {p.parent.name for p in REPOSITORY.glob("*/config.pbtxt")} == {
        "ecg_screening",
        "ecg_preprocess",
        "ecg_multitask",
        "ecg_segment",  # the page segmenter (issue 22); no model calls it yet
    }
    assert (REPOSITORY / "ecg_multitask/configs/cpu.pbtxt").exists()
    assert (REPOSITORY / "ecg_segment/configs/cpu.pbtxt").exists()
    assert (REPOSITORY / "ecg_segment/1/model.py").exists()
    assert (REPOSITORY / "ecg_screening/1").is_dir()  # an ensemble keeps an empty version folder
    assert (REPOSITORY / "ecg_preprocess/1/model.py").exists()
    assert (REPOSITORY / "ecg_multitask/1/model.py").exists()


@pytest.mark.parametrize("model", ["ecg_multitask", "ecg_segment"])
def test_gpu_config_is_native_onnxruntime_with_tensorrt_fp16_and_cpu_config_is_python(model):
    gpu = load(REPOSITORY / model / "config.pbtxt")
    cpu = load(REPOSITORY / model / "configs/cpu.pbtxt")
    assert gpu.platform == "onnxruntime_onnx" and gpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    (trt,) = gpu.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    assert trt.parameters["trt_engine_cache_enable"] == "1"
    assert gpu.dynamic_batching.max_queue_delay_microseconds > 0 and gpu.model_warmup
    assert cpu.backend == "python" and cpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert cpu.dynamic_batching.max_queue_delay_microseconds > 0
    assert tensors(gpu, "input") == tensors(cpu, "input")
    assert tensors(gpu, "output") == tensors(cpu, "output")


@pytest.mark.parametrize("variant", ["config.pbtxt", "configs/cpu.pbtxt"])
def test_ensemble_wiring_names_dtypes_and_dims_agree(variant):
    ensemble = load(REPOSITORY / "ecg_screening/config.pbtxt")
    assert ensemble.platform == "ensemble"
    produced = dict(tensors(ensemble, "input"))  # ensemble tensor -> (dtype, dims)
    for step in ensemble.ensemble_scheduling.step:
        step_dir = REPOSITORY / step.model_name
        path = step_dir / variant if (step_dir / variant).exists() else step_dir / "config.pbtxt"
        model = load(path)
        assert ensemble.max_batch_size <= model.max_batch_size, step.model_name
        inputs, outputs = tensors(model, "input"), tensors(model, "output")
        for model_input, ensemble_tensor in step.input_map.items():
            assert model_input in inputs, (step.model_name, model_input)
            assert produced[ensemble_tensor] == inputs[model_input], (step.model_name, model_input)
        for model_output, ensemble_tensor in step.output_map.items():
            assert model_output in outputs, (step.model_name, model_output)
            produced[ensemble_tensor] = outputs[model_output]
    for name, spec in tensors(ensemble, "output").items():
        assert produced.get(name) == spec, name
    assert {"SCAR_PROB", "LVEF_PROB", "EMBEDDING", "CAM", "PREPROC_INFO"} <= set(tensors(ensemble, "output"))


@pytest.mark.parametrize("model", ["ecg_multitask", "ecg_segment"])
def test_onnx_model_matches_its_config(model):
    config = load(REPOSITORY / model / "config.pbtxt")
    graph = onnx.load(REPOSITORY / model / "1/model.onnx").graph

    def shape(value):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
        return tuple(dims)

    onnx_inputs = {v.name: shape(v) for v in graph.input}
    onnx_outputs = {v.name: shape(v) for v in graph.output}
    for kind, found in (("input", onnx_inputs), ("output", onnx_outputs)):
        for name, (_, dims) in tensors(config, kind).items():
            assert name in found, name
            assert found[name][0] == -1 and found[name][1:] == dims, (name, found[name])  # dynamic batch


def test_cpu_instances_share_the_cores_without_waste():
    """Intake takes one file per instance (no dynamic batching: a batch would run file after file
    in one instance while another idles); the CPU network's sessions run one thread that
    sleeps when idle, one instance per intake instance."""
    for path in (REPOSITORY / "ecg_preprocess/config.pbtxt", REPOSITORY / "ecg_preprocess/configs/cpu.pbtxt"):
        assert not load(path).HasField("dynamic_batching"), path
    cpu = load(REPOSITORY / "ecg_multitask/configs/cpu.pbtxt")
    assert cpu.parameters["intra_op_threads"].string_value == "1"
    assert cpu.parameters["allow_spinning"].string_value == "0"
    intake = load(REPOSITORY / "ecg_preprocess/configs/cpu.pbtxt")
    assert cpu.instance_group[0].count == intake.instance_group[0].count
