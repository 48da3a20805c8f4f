"""A ghnq IR net (the JSON `Net::to_json` writes) as a PyTorch module, for ppuda's graph builder
and training loop (tools/ppuda-golden/generate.py and parity.py)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class IRNet(nn.Module):
    """Runs a ghnq IR net. Module `n<i>` is IR node i, so ppuda's parameter names ('n7.weight')
    identify IR nodes. By default linear layers flatten NCHW (the IR flattens HWC): same shapes,
    which is all the GHN sees, and no permute in the autograd trace ppuda builds its graph from.
    `flatten_hwc=True` computes exactly the IR's function (training; build the graph first)."""

    def __init__(self, net, flatten_hwc=False):
        super().__init__()
        self.ir = net
        self.flatten_hwc = flatten_hwc
        inp = net["input"]
        self.expected_input_sz = (inp["c"], inp["h"], inp["w"])
        for i, node in enumerate(net["nodes"]):
            op = node["op"]
            t = op["type"]
            m = None
            if t == "conv":
                m = nn.Conv2d(op["cin"], op["cout"], op["kernel"], stride=op["stride"],
                              padding=op["padding"], dilation=op["dilation"], groups=op["groups"],
                              bias=op["bias"])
            elif t == "batch_norm":
                m = nn.BatchNorm2d(op["channels"])
            elif t == "linear":
                m = nn.Linear(op["cin"], op["cout"], bias=op["bias"])
            elif t == "max_pool":
                m = nn.MaxPool2d(op["kernel"], op["stride"], op["padding"])
            elif t == "avg_pool":
                m = nn.AvgPool2d(op["kernel"], op["stride"], op["padding"], count_include_pad=False)
            elif t == "global_avg_pool":
                m = nn.AdaptiveAvgPool2d(1)
            elif t == "dropout":
                m = nn.Dropout(op["p"])
            elif t not in ("input", "relu", "add", "concat"):
                raise ValueError("unknown op " + t)
            if m is not None:
                self.add_module("n%d" % i, m)

    def forward(self, x):
        outs = []
        for i, node in enumerate(self.ir["nodes"]):
            op = node["op"]
            t = op["type"]
            ins = [outs[j] for j in node["inputs"]]
            if t == "input":
                y = x
            elif t == "relu":
                y = F.hardtanh(ins[0], 0.0, 6.0) if op["six"] else F.relu(ins[0])
            elif t == "add":
                y = ins[0]
                for z in ins[1:]:
                    y = y + z
            elif t == "concat":
                y = torch.cat(ins, 1)
            elif t == "linear":
                z = ins[0]
                if self.flatten_hwc and z.dim() == 4:
                    z = z.permute(0, 2, 3, 1)
                y = getattr(self, "n%d" % i)(z.flatten(1))
            else:
                y = getattr(self, "n%d" % i)(ins[0])
            outs.append(y)
        return outs[-1]
