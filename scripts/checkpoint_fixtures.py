#!/usr/bin/env python3
"""Test data for src/checkpoint (psyrun's reader of torch.save checkpoints).

Run with the project's venv (torch 2.13, torchvision 0.28):

    python scripts/checkpoint_fixtures.py fixtures [out_dir]
        Writes small checkpoints and the values they hold to out_dir (default
        tests/fixtures/checkpoint/, committed, a few kB each):
          mixed.pth        a BatchNorm2d state_dict (OrderedDict with _metadata)
                           plus tensors of every dtype psyrun reads, a
                           transposed view, a row view and a strided slice
                           sharing one storage, an expanded (stride 0) view,
                           an empty tensor, a 0-d tensor and an nn.Parameter;
          mixed.json       [{"key", "dtype", "shape", "values"}] for mixed.pth in
                           order, values flattened in C order (bool as 0/1);
          protocol4.pth    the same tensors saved with pickle_protocol=4
                           (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE);
          nested.pth       {"epoch": 3, "state_dict": {"module.…": …}, …}
                           (DataParallel keys, optimizer state, plain values);
          nested.json      what the reader should find in nested.pth;
          deep.pt          {"model": {"state_dict": …}, "step": 10};
          no_tensors.pth   a dict without any tensor;
          malicious.pth    a dict whose pickle calls os.system (never run!);
          whole_model.pth  torch.save(nn.Linear(2, 2)): a pickled module;
          legacy.pth       mixed.pth's tensors in the pre-1.6 format
                           (_use_new_zipfile_serialization=False);
          torchscript.pt   torch.jit.save of a scripted nn.Linear.

    python scripts/checkpoint_fixtures.py scripted [out_dir]
        TorchScript archives read as weights (the reader of
        src/checkpoint/torchscript.rs), written to out_dir (default
        tests/fixtures/checkpoint/, committed, a few kB each):
          scripted.pt      torch.jit.save(torch.jit.script(net)) of ScriptedNet: a
                           CLIP-like tree (conv without bias, parameters of the
                           top module, a BatchNorm with random statistics, an
                           nn.Sequential of blocks with LayerNorm,
                           MultiheadAttention (in_proj_weight, and its
                           q/k/v_proj_weight left None) and an MLP, a registered
                           buffer, and a plain tensor attribute that is no
                           parameter nor buffer, which state_dict() leaves out);
          scripted.json    net.state_dict() as in mixed.json (keys in order);
          traced_half.pt   torch.jit.trace of the same net, then .half() (as
                           OpenAI's CLIP files hold float16 weights): mangled
                           class names (___torch_mangle_N);
          traced_half.json its state_dict() in float16.

    python scripts/checkpoint_fixtures.py parity OUT_DIR
        For resnet18 with the random (seeded) weights of
        scripts/backbone_reference.py, writes to OUT_DIR:
          resnet18.pth             torch.save(model.state_dict());
          resnet18_nested.pth      {"epoch": 1, "state_dict": the state_dict of
                                   nn.DataParallel(model) ("module." keys)};
          resnet18.io.safetensors  `input` and `out.<cut>` for the cuts in
                                   PARITY_CUTS, as in backbone_reference.py.

    python scripts/checkpoint_fixtures.py save ARCH OUT_FILE
        torch.save(torchvision.models.<ARCH>(weights=None).state_dict(), OUT_FILE)
        with torch.manual_seed(0) weights (for end-to-end tests and timing).

    python scripts/checkpoint_fixtures.py torchscript OUT_DIR
        TorchScript backbones (`backbone torchscript "…"`), written to OUT_DIR:
          resnet18_layer1.pt   torchvision resnet18 (the weights of `save`) cut after
                               layer1, in eval mode, traced with torch.jit.trace;
          resnet18.pth         its full state_dict (the same weights), so that
                               the catalog backbone can be compared with it;
          tiny_cnn.pt          a small CNN psyrun's catalog does not have
                               (conv-BN-ReLU, a residual branch, conv stride 2),
                               scripted with torch.jit.script so that train()
                               and eval() reach its BatchNorm;
          tuple.pt             a scripted module returning (features, logits);
          refuses_batches.pt   a scripted module that raises for batches of more than
                               4 images (a libtorch error in the middle of a run).
"""
import collections
import json
import os
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY_CUTS = ["layer1", "layer2.0.downsample.0", "layer4", "fc"]


def flat(t):
    """A tensor's values in C order as JSON numbers."""
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return t.tolist()


DTYPE_NAMES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def describe(sd):
    return [
        {"key": k, "dtype": DTYPE_NAMES[v.dtype], "shape": list(v.shape), "values": flat(v)}
        for k, v in sd.items()
        if isinstance(v, torch.Tensor)
    ]


def write_json(path, entries):
    """One entry per line."""
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")


def mixed():
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
        bn.running_var.copy_(torch.tensor([1.0, 2.0, 4.0]))
        bn.num_batches_tracked.fill_(7)
    sd = bn.state_dict()  # an OrderedDict with a _metadata attribute (pickled by BUILD)
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    sd["view.base"] = base
    sd["view.transposed"] = base.t()  # non-contiguous, shares base's storage
    sd["view.row"] = base[1]  # storage offset 4
    sd["view.columns"] = base[:, 1::2]  # offset 1, strides (4, 2)
    sd["view.expanded"] = torch.tensor([1.0, -1.0]).expand(3, 2)  # stride 0
    sd["f64"] = torch.tensor([[1.5, -2.25]], dtype=torch.float64)
    sd["f16"] = torch.tensor([0.5, -1.0, 65504.0], dtype=torch.float16)
    sd["bf16"] = torch.tensor([1.0, -0.5, 3.0e38], dtype=torch.bfloat16)
    sd["i64"] = torch.tensor([-(2**40), 3], dtype=torch.int64)
    sd["i32"] = torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)  # 0-d
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.tensor([4.0, 5.0]))  # _rebuild_parameter
    return sd


class Evil:
    """Pickles as a call of os.system: a reader must refuse it, never run it."""

    def __reduce__(self):
        return (os.system, ("echo this checkpoint ran code",))


def tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))


def fixtures(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731

    sd = mixed()
    torch.save(sd, p("mixed.pth"))
    torch.save(sd, p("protocol4.pth"), pickle_protocol=4)
    write_json(p("mixed.json"), describe(sd))

    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 2, 4, 4)).sum().backward()
    opt.step()
    dp = collections.OrderedDict(("module." + k, v) for k, v in net.state_dict().items())
    torch.save(
        {
            "epoch": 3,
            "arch": "tiny",
            "best_acc": 0.5,
            "lr": [0.1, 0.01],
            "flags": (True, None),
            "big": 2**70,
            "state_dict": dp,
            "optimizer": opt.state_dict(),
        },
        p("nested.pth"),
    )
    write_json(p("nested.json"), describe(net.state_dict()))
    torch.save({"model": {"state_dict": net.state_dict()}, "step": 10}, p("deep.pt"))
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1, "momentum": 0.9}, "names": ["a", "b"]},
               p("no_tensors.pth"))
    torch.save({"w": torch.zeros(2), "x": Evil()}, p("malicious.pth"))
    torch.save(torch.nn.Linear(2, 2), p("whole_model.pth"))
    torch.save(sd, p("legacy.pth"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), p("torchscript.pt"))
    total = sum(os.path.getsize(p(n)) for n in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, to {out}")


class ScriptedBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(8)
        self.attn = torch.nn.MultiheadAttention(8, 2)
        self.mlp = torch.nn.Sequential(collections.OrderedDict([
            ("c_fc", torch.nn.Linear(8, 16)),
            ("gelu", torch.nn.GELU()),
            ("c_proj", torch.nn.Linear(16, 8)),
        ]))
        self.attn_mask = torch.zeros(3, 3)  # a plain attribute: not in state_dict()

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.attn_mask)[0]
        return x + self.mlp(x)


class ScriptedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 2, stride=2, bias=False)
        self.class_embedding = torch.nn.Parameter(torch.randn(8))
        self.bn = torch.nn.BatchNorm2d(8)
        self.blocks = torch.nn.Sequential(ScriptedBlock(), ScriptedBlock())
        self.proj = torch.nn.Parameter(torch.randn(8, 4))
        self.register_buffer("scale", torch.tensor([2.0]))

    def forward(self, x):
        x = self.bn(self.conv1(x)).flatten(2).permute(2, 0, 1)
        x = torch.cat([self.class_embedding.expand(1, x.shape[1], 8), x[:2]], 0)
        return self.blocks(x)[0] @ self.proj * self.scale


def scripted(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    torch.manual_seed(5)
    net = ScriptedNet().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.num_batches_tracked.fill_(3)
    torch.jit.save(torch.jit.script(net), p("scripted.pt"))
    write_json(p("scripted.json"), describe(net.state_dict()))
    traced = torch.jit.trace(net, torch.randn(1, 3, 4, 4)).half()
    torch.jit.save(traced, p("traced_half.pt"))
    write_json(p("traced_half.json"), describe(traced.state_dict()))
    print(f"scripted: scripted.pt, traced_half.pt in {out}")


def parity(out):
    sys.path.insert(0, HERE)
    from backbone_reference import randomised, write_safetensors

    os.makedirs(out, exist_ok=True)
    model = randomised("resnet18")
    torch.save(model.state_dict(), os.path.join(out, "resnet18.pth"))
    torch.save(
        {"epoch": 1, "state_dict": torch.nn.DataParallel(model).state_dict()},
        os.path.join(out, "resnet18_nested.pth"),
    )
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    modules = dict(model.named_modules())
    outs = {}
    hooks = [
        modules[c].register_forward_hook(
            lambda _m, _i, o, c=c: outs.__setitem__(f"out.{c}", o.detach().clone())
        )
        for c in PARITY_CUTS
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    write_safetensors(os.path.join(out, "resnet18.io.safetensors"), {"input": x, **outs})
    print(f"resnet18: {', '.join(PARITY_CUTS)}")


def save(arch, out):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    torch.save(model.state_dict(), out)
    print(f"{arch}: {os.path.getsize(out)} bytes to {out}")


class TinyCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.branch = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = y + torch.relu(self.branch(y))
        return self.conv2(y)


class WithLogits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        f = self.conv(x)
        return f, self.fc(f.mean(dim=(2, 3)))


class RefusesLargeBatches(torch.nn.Module):
    """A scripted module that raises inside libtorch for batches of more than 4 images: it
    loads and runs on psyrun's one-image shape probe, then fails while the probe trains."""

    def forward(self, x):
        if x.shape[0] > 4:
            raise RuntimeError("this module refuses batches of more than 4 images")
        return x[:, :, ::4, ::4]


def torchscript(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    torch.save(model.state_dict(), os.path.join(out, "resnet18.pth"))
    cut = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1)
    traced = torch.jit.trace(cut.eval(), torch.rand(1, 3, 64, 64))
    traced.save(os.path.join(out, "resnet18_layer1.pt"))
    torch.manual_seed(1)
    tiny = TinyCnn().eval()
    with torch.no_grad():  # running statistics that are not the identity
        tiny.bn1.running_mean.uniform_(-0.2, 0.2)
        tiny.bn1.running_var.uniform_(0.5, 2.0)
    torch.jit.script(tiny).save(os.path.join(out, "tiny_cnn.pt"))
    torch.jit.script(WithLogits().eval()).save(os.path.join(out, "tuple.pt"))
    torch.jit.script(RefusesLargeBatches().eval()).save(os.path.join(out, "refuses_batches.pt"))
    print(f"torchscript: {', '.join(sorted(os.listdir(out)))} in {out}")


def main():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    args = sys.argv[1:]
    if args[:1] == ["fixtures"] and len(args) <= 2:
        fixtures(args[1] if len(args) == 2 else os.path.join(HERE, "..", "tests", "fixtures", "checkpoint"))
    elif args[:1] == ["scripted"] and len(args) <= 2:
        scripted(args[1] if len(args) == 2 else os.path.join(HERE, "..", "tests", "fixtures", "checkpoint"))
    elif args[:1] == ["parity"] and len(args) == 2:
        parity(args[1])
    elif args[:1] == ["save"] and len(args) == 3:
        save(args[1], args[2])
    elif args[:1] == ["torchscript"] and len(args) == 2:
        torchscript(args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
