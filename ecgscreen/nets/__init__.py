"""Networks: the ResNet-D backbones, the multi-task model, its clinical fusion head and Grad-CAM++."""
