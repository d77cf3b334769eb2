"""The closed-form, in-graph Grad-CAM++ equals autograd Grad-CAM++ on the last conv block."""

from __future__ import annotations

import pytest
import torch
from nets_reference import pearson, randomize, reference_gradcam_pp

from ecgscreen.nets.cam import CamModel, gradcam_pp
from ecgscreen.nets.multitask import MultiTaskNet


@pytest.mark.parametrize(
    "backbone,size,seed", [("resnet18d_tiny", 128, 0), ("resnet18d_tiny", 96, 1), ("resnet18d", 64, 2)]
)
def test_closed_form_matches_autograd_grad_cam_pp(backbone, size, seed):
    model = randomize(MultiTaskNet(backbone, image_size=size), seed)
    image = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(seed + 10))
    with torch.no_grad():
        logits, embedding, cam = CamModel(model)(image)
        assert torch.allclose(logits, model(image), atol=1e-5)
    reference = reference_gradcam_pp(model, image)
    assert cam.shape == reference.shape == (4, 2, size // 32, size // 32)
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    informative = 0
    for b in range(4):
        for t in range(2):
            if float(reference[b, t].std()) > 1e-6:
                informative += 1
                assert pearson(cam[b, t], reference[b, t]) >= 0.99
            else:
                assert float(cam[b, t].std()) < 1e-3
    assert informative >= 6  # most maps have structure to compare


def test_maps_differ_between_tasks_and_images():
    model = randomize(MultiTaskNet("resnet18d_tiny", image_size=128), 3)
    image = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        _, _, cam = CamModel(model)(image)
    assert not torch.allclose(cam[0, 0], cam[0, 1], atol=1e-3)
    assert not torch.allclose(cam[0, 0], cam[1, 0], atol=1e-3)


def test_gradient_sign_selects_channels():
    """Only channels whose score gradient is positive contribute, weighted 1/(2 + g * sum A)."""
    features = torch.zeros(1, 2, 2, 2)
    features[0, 0, 0, 0] = 1.0  # channel 0 lights the top-left
    features[0, 1, 1, 1] = 1.0  # channel 1 lights the bottom-right
    z = torch.ones(1, 2)  # both embedding units active
    fc_weight = torch.eye(2)
    cam = gradcam_pp(features, z, fc_weight, torch.tensor([1.0, -1.0]))  # g = (+1/4, -1/4)
    assert cam[0, 0, 0] == pytest.approx(1.0, abs=1e-6) and float(cam[0].sum()) == pytest.approx(
        1.0, abs=1e-6
    )
    cam = gradcam_pp(features, torch.tensor([[-1.0, 1.0]]), fc_weight, torch.tensor([1.0, 1.0]))  # unit 0 off
    assert cam[0, 1, 1] == pytest.approx(1.0, abs=1e-6) and float(cam[0, 0, 0]) == 0.0
    assert float(gradcam_pp(features, -z, fc_weight, torch.ones(2)).abs().max()) == 0.0
