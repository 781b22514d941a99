"""psyrun's own forward floor: the throughput of a torchvision backbone cut after its first CUT
top-level children, in plain libtorch (PyTorch, inference mode, no autograd), contiguous and
channels-last. No tool running the same network on the same machine can beat the better one.
CLIP's (clip_*) and DINOv2's (dinov2_*) encoders are open_clip's and timm's models, cut by a
forward hook that ends the pass at the module.

Usage: python bench/floor.py [ARCH] [CUT] [BATCH] [SIZE] [DEVICE] [PRECISION]
(default resnet50 6 32 224 cpu fp32). CUT is a number of top-level children, or a module path
(`features.7`, `encoder.layers.encoder_layer_5`): the model up to that module's output,
traced by torchvision's `create_feature_extractor` (torch.fx), which computes nothing after it. PRECISION fp32 forbids TensorFloat-32 in cuDNN's
convolutions, as psyrun's default `precision fp32` does; PyTorch's own default (`tf32`
here) allows it, which on an H200 makes ResNet-50's convolutions about 1.7x faster and less
exact. It matters only on CUDA. Prints one JSON line.
"""
import json
import sys
import time

import torch
import torchvision

arch = sys.argv[1] if len(sys.argv) > 1 else "resnet50"
cut = sys.argv[2] if len(sys.argv) > 2 else "6"
cut = int(cut) if cut.isdigit() else cut
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32
size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
precision = sys.argv[6] if len(sys.argv) > 6 else "fp32"
if precision not in ("fp32", "tf32"):
    sys.exit(f"floor.py: precision must be fp32 or tf32, not {precision}")
torch.backends.cudnn.allow_tf32 = precision == "tf32"
torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

# CLIP's and DINOv2's encoders come from their reference implementations (open_clip,
# timm), cut by a forward hook that stops the pass at the module (nothing after it runs).
OPEN_CLIP = {"clip_rn50": "RN50-quickgelu", "clip_vit_b_32": "ViT-B-32-quickgelu",
             "clip_vit_b_16": "ViT-B-16-quickgelu"}
TIMM = {"dinov2_vits14": "vit_small_patch14_dinov2", "dinov2_vitb14": "vit_base_patch14_dinov2",
        "dinov2_vits14_reg": "vit_small_patch14_reg4_dinov2",
        "dinov2_vitb14_reg": "vit_base_patch14_reg4_dinov2"}


class Stop(Exception):
    pass


class Hooked(torch.nn.Module):
    """`inner` up to module `path`: its output, the rest of the forward never run."""

    def __init__(self, inner, path):
        super().__init__()
        self.inner = inner
        self.out = None

        def hook(_module, _inputs, output):
            self.out = output[0] if isinstance(output, tuple) else output
            raise Stop

        inner.get_submodule(path).register_forward_hook(hook)

    def forward(self, x):
        try:
            self.inner(x)
        except Stop:
            pass
        return self.out


if arch in OPEN_CLIP or arch in TIMM:
    if arch in OPEN_CLIP:
        import open_clip

        inner = open_clip.create_model(OPEN_CLIP[arch], pretrained=None).visual
    else:
        import timm

        inner = timm.create_model(TIMM[arch], pretrained=False, img_size=size, num_classes=0)
    model = Hooked(inner.eval(), str(cut)).eval().to(device)
    net = None
else:
    net = getattr(torchvision.models, arch)(weights=None)
if net is None:
    pass
elif isinstance(cut, int):
    model = torch.nn.Sequential(*list(net.children())[:cut]).eval().to(device)
else:
    from torchvision.models.feature_extraction import create_feature_extractor

    class Cut(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)["out"]

    model = Cut(create_feature_extractor(net.eval(), return_nodes={cut: "out"})).eval().to(device)
result = {"arch": arch, "cut": cut, "batch": batch, "size": size, "device": str(device),
          "precision": precision, "threads": torch.get_num_threads(), "torch": torch.__version__}
for name, layout in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
    m = model.to(memory_format=layout)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=layout)
    with torch.inference_mode():
        m(x)  # warm-up
        runs = 5 if device.type == "cpu" else 50
        sync()
        t = time.perf_counter()
        for _ in range(runs):
            m(x)
        sync()
        result[name] = batch * runs / (time.perf_counter() - t)
print(json.dumps(result))
